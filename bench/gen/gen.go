package gen

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// DefaultEditFraction is the share of rows the edited copy changes, inserts
// or deletes when Config.EditFraction is zero.
const DefaultEditFraction = 0.01

// Config says what to generate.
type Config struct {
	// Size is the target size of the original dump in bytes. The result is
	// within a few hundred bytes of it, schema included.
	Size int64
	// Seed selects the content; equal configs give identical bytes.
	Seed uint64
	// EditFraction is the expected share of rows that the edited copy
	// changes, inserts after, or deletes (one third each). Zero means
	// DefaultEditFraction; a negative value means no edits.
	EditFraction float64
}

// TableStats describes one table of the original dump.
type TableStats struct {
	Name  string `json:"name"`
	Rows  int64  `json:"rows"`
	Bytes int64  `json:"bytes"`
}

// Stats describes a generated pair of streams.
type Stats struct {
	OrigBytes   int64 `json:"orig_bytes"`
	EditedBytes int64 `json:"edited_bytes"`
	// Rows counts the data rows of the original dump.
	Rows     int64 `json:"rows"`
	Changed  int64 `json:"changed"`
	Inserted int64 `json:"inserted"`
	Deleted  int64 `json:"deleted"`
	// EditBytes is the raw size of the changed and inserted rows as they
	// appear in the edited copy, newlines included.
	EditBytes int64 `json:"edit_bytes"`
	// IdealBytes is the zstd size (default level, one frame) of those rows
	// alone: what an ideal incremental backup of the edited copy would add.
	IdealBytes int64        `json:"ideal_bytes"`
	Tables     []TableStats `json:"tables"`
}

// Generate writes a pg_dump-like plain SQL dump to orig and its edited copy
// to edited (which may be nil), in one streaming pass with bounded memory.
func Generate(orig, edited io.Writer, cfg Config) (Stats, error) {
	if cfg.Size <= 0 {
		return Stats{}, fmt.Errorf("generate: size %d must be positive", cfg.Size)
	}
	if cfg.EditFraction == 0 {
		cfg.EditFraction = DefaultEditFraction
	}
	if edited == nil {
		edited = io.Discard
	}
	var ideal countWriter
	enc, err := zstd.NewWriter(&ideal, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return Stats{}, fmt.Errorf("generate: %w", err)
	}
	g := &generator{
		cfg:    cfg,
		w:      newWorld(),
		orig:   sink{w: orig},
		edited: sink{w: edited},
		ideal:  enc,
	}
	g.edit.Seed(cfg.Seed, 0xed17)
	g.run()
	if err := enc.Close(); err != nil && g.err == nil {
		g.err = fmt.Errorf("generate: ideal: %w", err)
	}
	g.st.OrigBytes, g.st.EditedBytes = g.orig.n, g.edited.n
	g.st.IdealBytes = ideal.n
	return g.st, errors.Join(g.err, g.orig.err, g.edited.err)
}

// generator holds the state of one Generate call.
type generator struct {
	cfg          Config
	w            *world
	orig, edited sink
	ideal        *zstd.Encoder
	edit         rand.PCG // decides and seeds the edits, apart from the content
	rr           rowRand
	row, alt     []byte
	st           Stats
	err          error
}

const flushSize = 1 << 20

// sink buffers one output stream and counts its bytes. A failed sink keeps
// its error and drops further output.
type sink struct {
	w   io.Writer
	buf []byte
	n   int64
	err error
}

func (s *sink) write(p []byte) {
	s.buf = append(s.buf, p...)
	s.n += int64(len(p))
	if len(s.buf) >= flushSize {
		s.flush()
	}
}

func (s *sink) flush() {
	if s.err == nil && len(s.buf) > 0 {
		_, s.err = s.w.Write(s.buf)
	}
	s.buf = s.buf[:0]
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func (g *generator) both(s string) {
	g.orig.write([]byte(s))
	g.edited.write([]byte(s))
}

func (g *generator) run() {
	tabs := tables(g.w)
	head, tail := header(tabs), footer(tabs)
	g.both(head)
	const setval = 150 // bytes per table of the sequence values before the footer
	budget := float64(g.cfg.Size - int64(len(head)+len(tail)+setval*len(tabs)))
	for _, t := range tabs {
		est := max(1, int(budget*t.share)/t.avgRow)
		switch t.name {
		case "customers":
			g.w.customers = est
		case "products":
			g.w.products = est
		}
	}
	maxIDs := make([][2]int64, len(tabs))
	for i, t := range tabs {
		maxIDs[i] = g.table(t, i, int64(budget*t.share))
	}
	for k, s := range []*sink{&g.orig, &g.edited} {
		var b strings.Builder
		for i, t := range tabs {
			fmt.Fprintf(&b, "--\n-- Name: %[1]s_id_seq; Type: SEQUENCE SET; Schema: public; Owner: app\n--\n\n"+
				"SELECT pg_catalog.setval('public.%[1]s_id_seq', %[2]d, true);\n\n\n", t.name, maxIDs[i][k])
		}
		s.write([]byte(b.String() + tail))
		s.flush()
	}
}

// table writes the data of one table, about budget bytes of rows, and
// returns the largest id in the original and in the edited stream.
func (g *generator) table(t *table, index int, budget int64) [2]int64 {
	cols := make([]string, len(t.columns))
	for i, c := range t.columns {
		cols[i] = c.name
	}
	g.both(fmt.Sprintf("--\n-- Data for Name: %s; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n"+
		"COPY public.%s (%s) FROM stdin;\n", t.name, t.name, strings.Join(cols, ", ")))

	var seq rand.PCG
	seq.Seed(g.cfg.Seed, uint64(index)+1)
	est := max(1, budget/int64(t.avgRow))
	span := float64(g.w.end-g.w.start) / float64(est)
	insertBase := int64(1)
	for insertBase <= 4*est {
		insertBase *= 10
	}
	var (
		ts       = g.w.start
		inserted int64
		start    = g.orig.n
		id       int64
	)
	for id = 1; g.orig.n-start < budget; id++ {
		t.rows.advance(&seq)
		seed := seq.Uint64()
		ts += 1 + int64(float64(seq.Uint64()>>11)/(1<<53)*2*span)
		g.rr.reset(seed, 0, false)
		g.row = append(t.rows.appendRow(g.row[:0], id, ts, &g.rr), '\n')
		g.orig.write(g.row)

		if float64(g.edit.Uint64()>>11)/(1<<53) >= g.cfg.EditFraction {
			g.edited.write(g.row)
			continue
		}
		switch g.edit.Uint64() % 3 {
		case 0: // changed in place
			g.rr.reset(seed, g.edit.Uint64(), true)
			g.editRow(t.rows.appendRow(g.alt[:0], id, ts, &g.rr))
			g.st.Changed++
		case 1: // a new row after this one
			g.edited.write(g.row)
			inserted++
			g.rr.reset(g.edit.Uint64(), 0, false)
			g.editRow(t.rows.appendRow(g.alt[:0], insertBase+inserted, g.w.end+inserted*7e6, &g.rr))
			g.st.Inserted++
		default:
			g.st.Deleted++
		}
	}
	id--
	g.st.Rows += id
	g.st.Tables = append(g.st.Tables, TableStats{Name: t.name, Rows: id, Bytes: g.orig.n - start})
	g.both("\\.\n\n\n")
	if inserted > 0 {
		return [2]int64{id, insertBase + inserted}
	}
	return [2]int64{id, id}
}

// editRow writes a changed or inserted row to the edited stream and to the
// ideal compressor.
func (g *generator) editRow(row []byte) {
	g.alt = append(row, '\n')
	g.edited.write(g.alt)
	g.st.EditBytes += int64(len(g.alt))
	if _, err := g.ideal.Write(g.alt); err != nil && g.err == nil {
		g.err = fmt.Errorf("generate: ideal: %w", err)
	}
}

// footer returns the constraints and indexes that end the dump.
func footer(tabs []*table) string {
	var b strings.Builder
	for _, t := range tabs {
		fmt.Fprintf(&b, "--\n-- Name: %[1]s %[1]s_pkey; Type: CONSTRAINT; Schema: public; Owner: app\n--\n\n"+
			"ALTER TABLE ONLY public.%[1]s\n    ADD CONSTRAINT %[1]s_pkey PRIMARY KEY (id);\n\n\n", t.name)
	}
	for _, t := range tabs {
		for _, ix := range t.indexes {
			fmt.Fprintf(&b, "--\n-- Name: %s; Type: INDEX; Schema: public; Owner: app\n--\n\n%s\n\n\n", t.name, ix)
		}
	}
	b.WriteString("--\n-- PostgreSQL database dump complete\n--\n\n")
	return b.String()
}

// header returns the preamble and the schema: SET statements, then one
// CREATE TABLE and CREATE SEQUENCE per table.
func header(tabs []*table) string {
	var b strings.Builder
	b.WriteString(`--
-- PostgreSQL database dump
--

-- Dumped from database version 15.5 (Debian 15.5-1.pgdg120+1)
-- Dumped by pg_dump version 15.5 (Debian 15.5-1.pgdg120+1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

`)
	for _, t := range tabs {
		fmt.Fprintf(&b, "--\n-- Name: %s; Type: TABLE; Schema: public; Owner: app\n--\n\nCREATE TABLE public.%s (\n", t.name, t.name)
		for i, c := range t.columns {
			sep := ",\n"
			if i == len(t.columns)-1 {
				sep = "\n"
			}
			b.WriteString("    " + c.name + " " + c.typ + sep)
		}
		fmt.Fprintf(&b, ");\n\n\nALTER TABLE public.%s OWNER TO app;\n\n", t.name)
		fmt.Fprintf(&b, "--\n-- Name: %[1]s_id_seq; Type: SEQUENCE; Schema: public; Owner: app\n--\n\n"+
			"CREATE SEQUENCE public.%[1]s_id_seq\n    START WITH 1\n    INCREMENT BY 1\n    NO MINVALUE\n    NO MAXVALUE\n    CACHE 1;\n\n\n"+
			"ALTER TABLE public.%[1]s_id_seq OWNER TO app;\n\n"+
			"ALTER SEQUENCE public.%[1]s_id_seq OWNED BY public.%[1]s.id;\n\n\n", t.name)
	}
	for _, t := range tabs {
		fmt.Fprintf(&b, "--\n-- Name: %[1]s id; Type: DEFAULT; Schema: public; Owner: app\n--\n\n"+
			"ALTER TABLE ONLY public.%[1]s ALTER COLUMN id SET DEFAULT nextval('public.%[1]s_id_seq'::regclass);\n\n\n", t.name)
	}
	return b.String()
}
