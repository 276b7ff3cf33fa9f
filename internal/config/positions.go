package config

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// lineMap maps a key path (pathKey) to the line where the key, table header
// or array element appears first.
type lineMap map[string]int

// pathKey joins a key path; array elements are "#N" parts.
func pathKey(path []string) string { return strings.Join(path, "\x00") }

// elem is the path part of array element i.
func elem(i int) string { return "#" + strconv.Itoa(i) }

// positions walks the TOML syntax tree of data and records the line of every
// key, table and array element. The values themselves are decoded by
// toml.Unmarshal, which also reports syntax errors; a document it accepts is
// walked here without error.
func positions(data []byte) lineMap {
	lines := lineMap{}
	var p unstable.Parser
	p.Reset(data)
	var cur []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			keys, line := keyOf(&p, e.Key(), 0)
			cur = keys
			lines.setPrefixes(cur, line)
		case unstable.KeyValue:
			keys, line := keyOf(&p, e.Key(), 0)
			full := append(append([]string(nil), cur...), keys...)
			lines.setPrefixes(full, line)
			lines.walkValue(&p, e.Value(), full, line)
		}
	}
	return lines
}

// setPrefixes records line for path and each of its prefixes not seen yet.
func (l lineMap) setPrefixes(path []string, line int) {
	for i := 1; i <= len(path); i++ {
		k := pathKey(path[:i])
		if _, ok := l[k]; !ok {
			l[k] = line
		}
	}
}

// walkValue records the lines of the elements of arrays and the keys of
// inline tables in v, found at path on line.
func (l lineMap) walkValue(p *unstable.Parser, v *unstable.Node, path []string, line int) {
	switch v.Kind {
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			n := it.Node()
			nl := nodeLine(p, n, line)
			sub := append(append([]string(nil), path...), elem(i))
			l.setPrefixes(sub, nl)
			l.walkValue(p, n, sub, nl)
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			kv := it.Node()
			if kv.Kind != unstable.KeyValue {
				continue
			}
			keys, kl := keyOf(p, kv.Key(), line)
			sub := append(append([]string(nil), path...), keys...)
			l.setPrefixes(sub, kl)
			l.walkValue(p, kv.Value(), sub, kl)
		}
	}
}

// keyOf returns the parts of a (dotted) key and the line of its first part,
// or fallback when the parser kept no position.
func keyOf(p *unstable.Parser, it unstable.Iterator, fallback int) ([]string, int) {
	var keys []string
	line := 0
	for it.Next() {
		n := it.Node()
		keys = append(keys, string(n.Data))
		if line == 0 {
			line = nodeLine(p, n, fallback)
		}
	}
	if line == 0 {
		line = fallback
	}
	return keys, line
}

// nodeLine is the line where n starts, or fallback when n has no position
// (containers, some scalars).
func nodeLine(p *unstable.Parser, n *unstable.Node, fallback int) int {
	if n.Raw.Length == 0 {
		if c := n.Child(); c != nil {
			return nodeLine(p, c, fallback)
		}
		return fallback
	}
	return p.Shape(n.Raw).Start.Line
}
