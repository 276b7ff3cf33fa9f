package gen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"

	"github.com/klauspost/compress/zstd"
)

// EditConfig says how Edit changes a dump.
type EditConfig struct {
	// Seed selects the edits; equal inputs and configs give identical bytes.
	Seed uint64
	// Fraction is the expected share of rows that are changed, get a new
	// row inserted after them, or are deleted (one third each). It must be
	// in [0, 1].
	Fraction float64
	// FirstID is the id of the first inserted row; later inserted rows
	// count up from it. Zero means 2^40 plus a seed-dependent offset, far
	// above the ids Generate writes, so successive nights do not collide.
	FirstID int64
}

// EditStats describes what one Edit call did.
type EditStats struct {
	InBytes  int64 `json:"in_bytes"`
	OutBytes int64 `json:"out_bytes"`
	// Rows counts the data rows of the input.
	Rows     int64 `json:"rows"`
	Changed  int64 `json:"changed"`
	Inserted int64 `json:"inserted"`
	Deleted  int64 `json:"deleted"`
	// EditBytes and IdealBytes are as in Stats: the raw and the zstd
	// (default level, one frame) size of the changed and inserted rows.
	EditBytes  int64 `json:"edit_bytes"`
	IdealBytes int64 `json:"ideal_bytes"`
}

// donors is how many recent rows of the current table Edit keeps to draw
// column values from.
const donors = 64

// Edit copies the plain SQL dump src to dst, changing, inserting after or
// deleting about cfg.Fraction of the rows of its COPY blocks, spread over
// the whole dump. It models one day of a database: applied to the output of
// Generate, then to its own output, it gives successive nights.
//
// A changed row keeps its id (the first column) and takes about a third of
// its other columns, at least one, from rows shortly before it in the same
// table, so the new values look like the table's. An inserted row is made
// of columns of such rows under a new id (cfg.FirstID counting up). Lines
// outside COPY blocks, including the sequence values, are copied unchanged.
// Memory is bounded whatever the size of the dump.
func Edit(dst io.Writer, src io.Reader, cfg EditConfig) (EditStats, error) {
	if !(cfg.Fraction >= 0 && cfg.Fraction <= 1) {
		return EditStats{}, fmt.Errorf("edit: fraction %v must be in [0, 1]", cfg.Fraction)
	}
	var ideal countWriter
	enc, err := zstd.NewWriter(&ideal, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return EditStats{}, fmt.Errorf("edit: %w", err)
	}
	e := &editor{cfg: cfg, in: bufio.NewReaderSize(src, flushSize), out: sink{w: dst}, ideal: enc}
	e.rng.Seed(cfg.Seed, 0xed17ed17)
	if e.nextID = cfg.FirstID; e.nextID == 0 {
		e.nextID = 1<<40 + int64(cfg.Seed%(1<<20))<<16
	}
	err = e.run()
	e.out.flush()
	if cerr := enc.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("edit: ideal: %w", cerr)
	}
	e.st.OutBytes, e.st.IdealBytes = e.out.n, ideal.n
	return e.st, errors.Join(err, e.out.err)
}

// editor holds the state of one Edit call.
type editor struct {
	cfg    EditConfig
	in     *bufio.Reader
	out    sink
	ideal  *zstd.Encoder
	rng    rand.PCG
	nextID int64
	st     EditStats

	line  []byte          // the current line when it outgrew the reader's buffer
	ring  [donors][]byte  // recent rows of the current table, without newline
	cols  [donors][]int32 // tab offsets of each ring row
	seen  int             // rows of the current table so far
	nring int             // rows in the ring, up to donors
	row   []byte          // the row being built
	rcols []int32
}

func (e *editor) float() float64 { return float64(e.rng.Uint64()>>11) / (1 << 53) }

func (e *editor) intn(k int) int { return uniform(e.rng.Uint64(), k) }

// readLine returns the next line with its newline, if any. The slice is
// valid until the next call.
func (e *editor) readLine() ([]byte, error) {
	b, err := e.in.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		e.st.InBytes += int64(len(b))
		return b, err
	}
	e.line = append(e.line[:0], b...)
	for errors.Is(err, bufio.ErrBufferFull) {
		b, err = e.in.ReadSlice('\n')
		e.line = append(e.line, b...)
	}
	e.st.InBytes += int64(len(e.line))
	return e.line, err
}

func (e *editor) run() error {
	inCopy := false
	for {
		line, err := e.readLine()
		if len(line) > 0 {
			switch {
			case !inCopy:
				e.out.write(line)
				if bytes.HasPrefix(line, []byte("COPY ")) && bytes.HasSuffix(bytes.TrimRight(line, "\r\n"), []byte("FROM stdin;")) {
					inCopy, e.seen, e.nring = true, 0, 0
				}
			case string(bytes.TrimRight(line, "\n")) == `\.`:
				e.out.write(line)
				inCopy = false
			default:
				e.editRow(line)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("edit: read: %w", err)
		}
		if e.out.err != nil {
			return fmt.Errorf("edit: write: %w", e.out.err)
		}
	}
}

// editRow copies one data row (with its newline, if any), maybe edited.
func (e *editor) editRow(line []byte) {
	e.st.Rows++
	body := bytes.TrimSuffix(line, []byte("\n"))
	// The decision is drawn for every row, so the edits of a row do not
	// depend on those before it.
	u, kind := e.float(), e.rng.Uint64()%3
	if u >= e.cfg.Fraction || e.nring < 2 {
		e.out.write(line)
		e.remember(body)
		return
	}
	switch kind {
	case 0: // changed in place
		if e.change(body) {
			e.emit()
			e.st.Changed++
		} else {
			e.out.write(line)
		}
	case 1: // a new row after this one
		e.out.write(line)
		e.insert(body)
		e.emit()
		e.st.Inserted++
	default:
		e.st.Deleted++
	}
	e.remember(body)
}

// remember puts a row into the ring of donors.
func (e *editor) remember(body []byte) {
	k := e.seen % donors
	e.ring[k] = append(e.ring[k][:0], body...)
	e.cols[k] = tabs(e.cols[k][:0], body)
	e.seen++
	e.nring = min(e.seen, donors)
}

// tabs appends the start of every column of row to dst, then len(row)+1.
func tabs(dst []int32, row []byte) []int32 {
	dst = append(dst, 0)
	for i, c := range row {
		if c == '\t' {
			dst = append(dst, int32(i+1))
		}
	}
	return append(dst, int32(len(row)+1))
}

// field returns column i of a row split by tabs.
func field(row []byte, cols []int32, i int) []byte { return row[cols[i] : cols[i+1]-1] }

// donor returns a random row of the ring with n columns, or -1.
func (e *editor) donor(n int) int {
	for range 4 {
		k := e.intn(e.nring)
		if len(e.cols[k])-1 == n {
			return k
		}
	}
	return -1
}

// change builds into e.row a changed copy of body: same id, about a third
// of the other columns from donors, at least one of them different. It
// reports false when no donor offers a different value.
func (e *editor) change(body []byte) bool {
	e.rcols = tabs(e.rcols[:0], body)
	n := len(e.rcols) - 1
	if n < 2 {
		return false
	}
	e.row = append(e.row[:0], field(body, e.rcols, 0)...)
	must := 1 + e.intn(n-1) // a column that must change
	changed := false
	for i := 1; i < n; i++ {
		v := field(body, e.rcols, i)
		if i == must || e.intn(3) == 0 {
			for range 4 {
				if k := e.donor(n); k >= 0 {
					if d := field(e.ring[k], e.cols[k], i); !bytes.Equal(d, v) {
						v, changed = d, true
						break
					}
				}
			}
		}
		e.row = append(append(e.row, '\t'), v...)
	}
	return changed
}

// insert builds into e.row a new row with a new id and every other column
// from a random donor.
func (e *editor) insert(body []byte) {
	e.rcols = tabs(e.rcols[:0], body)
	n := len(e.rcols) - 1
	e.row = strconv.AppendInt(e.row[:0], e.nextID, 10)
	e.nextID++
	for i := 1; i < n; i++ {
		v := field(body, e.rcols, i)
		if k := e.donor(n); k >= 0 {
			v = field(e.ring[k], e.cols[k], i)
		}
		e.row = append(append(e.row, '\t'), v...)
	}
}

// emit writes e.row as a changed or inserted row.
func (e *editor) emit() {
	e.row = append(e.row, '\n')
	e.out.write(e.row)
	e.st.EditBytes += int64(len(e.row))
	if _, err := e.ideal.Write(e.row); err != nil && e.out.err == nil {
		e.out.err = fmt.Errorf("ideal: %w", err)
	}
}
