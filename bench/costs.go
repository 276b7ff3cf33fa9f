package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/bk-backup/bk/chunk"
	"github.com/bk-backup/bk/crypt"
	"github.com/klauspost/compress/zstd"
)

// cost is what one stage of a backup costs on one core.
type cost struct {
	Name string `json:"name"`
	// SecPerGB is CPU seconds per GB (10^9 bytes) of the stage's own input.
	SecPerGB float64 `json:"cpu_s_per_gb"`
	// DumpSecPerGB is CPU seconds per GB of dump text, which differs from
	// SecPerGB for stages that see compressed bytes.
	DumpSecPerGB float64 `json:"cpu_s_per_dump_gb"`
	// Ratio is the compression ratio, for compressors.
	Ratio float64 `json:"ratio,omitempty"`
	Note  string  `json:"note,omitempty"`
}

// MBps is the single-core throughput over the stage's own input.
func (c cost) MBps() float64 { return 1000 / c.SecPerGB }

// costs holds the component measurements and the ceiling derived from them.
type costs struct {
	SampleBytes int64  `json:"sample_bytes"`
	Chunks      int    `json:"chunks"`
	Level       string `json:"bk_zstd_level"`
	Stages      []cost `json:"stages"`
	// PipelineSecPerGB is (chunker + blake3 + zstd + aes) / 2: the work of a
	// first snapshot spread over two cores.
	PipelineSecPerGB float64 `json:"pipeline_cpu_s_per_gb"`
	// CeilingMBps is 1000 / max(chunker, pipeline): the fastest a first
	// snapshot can go on two cores, the chunker being one sequential stage.
	CeilingMBps float64 `json:"ceiling_mbps"`
	ChunkerMBps float64 `json:"chunker_mbps"`
}

// cpuTime returns the user plus system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs pass, which handles n bytes, on the calling goroutine until
// at least a second has passed, and returns CPU seconds per GB.
func measure(n int64, pass func()) float64 {
	runtime.GC()
	c0, t0 := cpuTime(), time.Now()
	var total int64
	for total == 0 || time.Since(t0) < time.Second {
		pass()
		total += n
	}
	return (cpuTime() - c0).Seconds() / (float64(total) / 1e9)
}

// loadSample reads up to limit bytes of path into memory: the whole file if
// it fits, otherwise 16 evenly spaced pieces, so every table is represented.
func loadSample(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load sample: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load sample: %w", err)
	}
	if fi.Size() <= limit {
		return io.ReadAll(f)
	}
	const pieces = 16
	piece := limit / pieces
	buf := make([]byte, 0, limit)
	for i := int64(0); i < pieces; i++ {
		off := i * (fi.Size() - piece) / (pieces - 1)
		n, err := f.ReadAt(buf[len(buf):len(buf)+int(piece)], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("load sample: %w", err)
		}
		buf = buf[:len(buf)+n]
	}
	return buf, nil
}

// measureCosts measures each stage on sample. level is the zstd level bk
// writes with; the ceiling and the AES stage use it.
func measureCosts(sample []byte, level zstd.EncoderLevel) (costs, error) {
	n := int64(len(sample))
	res := costs{SampleBytes: n, Level: level.String()}

	p, err := chunk.NewParams()
	if err != nil {
		return res, err
	}
	var sizes []int
	var runErr error
	chunker := measure(n, func() {
		sizes = sizes[:0]
		s := chunk.NewSplitter(bytes.NewReader(sample), p)
		buf := make([]byte, 0, p.MaxSize)
		for {
			b, err := s.Next(buf)
			if err == io.EOF {
				return
			} else if err != nil {
				runErr = err
				return
			}
			sizes = append(sizes, len(b))
			buf = b
		}
	})
	if runErr != nil {
		return res, fmt.Errorf("chunker: %w", runErr)
	}
	chunks := make([][]byte, 0, len(sizes))
	for off, i := 0, 0; i < len(sizes); off, i = off+sizes[i], i+1 {
		chunks = append(chunks, sample[off:off+sizes[i]])
	}
	res.Chunks = len(chunks)
	res.Stages = append(res.Stages, cost{Name: "chunker", SecPerGB: chunker, DumpSecPerGB: chunker,
		Note: fmt.Sprintf("%s, %d chunks, avg %s", p.Algorithm, len(chunks), formatSize(n/int64(max(1, len(chunks)))))})

	mk, err := crypt.NewMasterKey()
	if err != nil {
		return res, err
	}
	ids := make([]crypt.ID, len(chunks))
	h := measure(n, func() {
		for i, c := range chunks {
			ids[i] = mk.BlobID(c)
		}
	})
	res.Stages = append(res.Stages, cost{Name: "blake3 keyed", SecPerGB: h, DumpSecPerGB: h, Note: "crypt.MasterKey.BlobID"})

	// Compress at both levels; keep the output of bk's level for AES and
	// decompression.
	var packed [][]byte
	levels := []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault}
	if level != zstd.SpeedFastest && level != zstd.SpeedDefault {
		levels = append(levels, level)
	}
	for _, lv := range levels {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lv), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return res, err
		}
		var out int64
		dst := make([]byte, 0, p.MaxSize+p.MaxSize/8)
		sec := measure(n, func() {
			out = 0
			for _, c := range chunks {
				dst = enc.EncodeAll(c, dst[:0])
				out += int64(len(dst))
			}
		})
		if lv == level {
			packed = make([][]byte, len(chunks))
			for i, c := range chunks {
				packed[i] = enc.EncodeAll(c, nil)
			}
		}
		note := ""
		if lv == level {
			note = "the level bk writes"
		}
		res.Stages = append(res.Stages, cost{Name: "zstd " + lv.String(), SecPerGB: sec, DumpSecPerGB: sec,
			Ratio: float64(n) / float64(out), Note: note})
	}
	var packedBytes int64
	for _, c := range packed {
		packedBytes += int64(len(c))
	}

	salt, err := crypt.NewSalt()
	if err != nil {
		return res, err
	}
	sealer, err := mk.Subkey(salt)
	if err != nil {
		return res, err
	}
	sealed := make([]byte, 0, p.MaxSize+p.MaxSize/8+64)
	aes := measure(packedBytes, func() {
		for i, c := range packed {
			sealed = sealer.Seal(sealed[:0], uint64(i), c, ids[i][:])
		}
	})
	res.Stages = append(res.Stages, cost{Name: "aes-256-gcm", SecPerGB: aes,
		DumpSecPerGB: aes * float64(packedBytes) / float64(n),
		Note:         "over zstd " + level.String() + " output; s/GB of its input"})

	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return res, err
	}
	defer dec.Close()
	plain := make([]byte, 0, p.MaxSize)
	unz := measure(n, func() {
		for _, c := range packed {
			if plain, err = dec.DecodeAll(c, plain[:0]); err != nil {
				runErr = err
			}
		}
	})
	if runErr != nil {
		return res, fmt.Errorf("zstd decompress: %w", runErr)
	}
	res.Stages = append(res.Stages, cost{Name: "zstd decompress", SecPerGB: unz, DumpSecPerGB: unz,
		Note: "s/GB of output"})

	var sum float64
	for _, s := range res.Stages {
		if s.Name == "chunker" || s.Name == "blake3 keyed" || s.Name == "zstd "+level.String() || s.Name == "aes-256-gcm" {
			sum += s.DumpSecPerGB
		}
	}
	res.PipelineSecPerGB = sum / 2
	res.CeilingMBps = 1000 / max(chunker, res.PipelineSecPerGB)
	res.ChunkerMBps = 1000 / chunker
	return res, nil
}
