package gen

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// world is what every table shares: the vocabulary, the time span the rows
// cover and the estimated sizes of the referenced tables.
type world struct {
	vocab                 []string
	lowerFirst, lowerLast []string
	start, end            int64 // Unix microseconds
	customers, products   int   // estimated row counts, the range of foreign keys
}

func newWorld() *world {
	w := &world{
		vocab: vocabulary(4096),
		start: 1546300800e6, // 2019-01-01
		end:   1704067200e6, // 2024-01-01
	}
	for _, s := range firstNames {
		w.lowerFirst = append(w.lowerFirst, strings.ToLower(s))
	}
	for _, s := range lastNames {
		w.lowerLast = append(w.lowerLast, strings.ToLower(s))
	}
	return w
}

// column is one column of a CREATE TABLE statement.
type column struct{ name, typ string }

// table describes one table of the dump and how its rows look.
type table struct {
	name    string
	columns []column
	share   float64 // fraction of the data bytes
	avgRow  int     // rough bytes per row, to spread timestamps and size foreign keys
	rows    rowFormatter
	indexes []string // statements for the end of the dump
}

// rowFormatter produces the COPY lines of one table.
type rowFormatter interface {
	// advance moves state shared by consecutive rows (a web session, say) on
	// by one original row. Only the original stream calls it.
	advance(seq *rand.PCG)
	// appendRow appends row id at time ts, without the newline. It must be a
	// pure function of its arguments and the state set by advance.
	appendRow(b []byte, id, ts int64, r *rowRand) []byte
}

func tables(w *world) []*table {
	return []*table{
		{
			name: "customers", share: 0.15, avgRow: 250, rows: &customers{w: w},
			columns: []column{{"id", "bigint NOT NULL"}, {"email", "text NOT NULL"}, {"full_name", "text NOT NULL"},
				{"password_hash", "character(32) NOT NULL"}, {"country", "character(2)"}, {"status", "text DEFAULT 'active'::text NOT NULL"},
				{"balance", "numeric(12,2) DEFAULT 0 NOT NULL"}, {"created_at", "timestamp with time zone DEFAULT now() NOT NULL"},
				{"updated_at", "timestamp with time zone DEFAULT now() NOT NULL"}, {"last_login", "timestamp with time zone"},
				{"preferences", "jsonb DEFAULT '{}'::jsonb NOT NULL"}},
			indexes: []string{"CREATE INDEX customers_email_idx ON public.customers USING btree (email);"},
		},
		{
			name: "events", share: 0.45, avgRow: 260, rows: &events{w: w},
			columns: []column{{"id", "bigint NOT NULL"}, {"customer_id", "bigint NOT NULL"}, {"session_id", "uuid NOT NULL"},
				{"kind", "text NOT NULL"}, {"occurred_at", "timestamp with time zone NOT NULL"}, {"ip", "inet"},
				{"user_agent", "text"}, {"properties", "jsonb DEFAULT '{}'::jsonb NOT NULL"}},
			indexes: []string{"CREATE INDEX events_customer_id_occurred_at_idx ON public.events USING btree (customer_id, occurred_at);",
				"CREATE INDEX events_session_id_idx ON public.events USING btree (session_id);",
				"ALTER TABLE ONLY public.events\n    ADD CONSTRAINT events_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customers(id) ON DELETE CASCADE;"},
		},
		{
			name: "orders", share: 0.32, avgRow: 330, rows: &orders{w: w},
			columns: []column{{"id", "bigint NOT NULL"}, {"customer_id", "bigint NOT NULL"}, {"status", "text NOT NULL"},
				{"currency", "character(3) NOT NULL"}, {"subtotal", "numeric(12,2) NOT NULL"}, {"tax", "numeric(12,2) NOT NULL"},
				{"total", "numeric(12,2) NOT NULL"}, {"created_at", "timestamp with time zone DEFAULT now() NOT NULL"},
				{"updated_at", "timestamp with time zone DEFAULT now() NOT NULL"}, {"shipping_address", "text"},
				{"items", "jsonb NOT NULL"}, {"note", "text"}},
			indexes: []string{"CREATE INDEX orders_customer_id_idx ON public.orders USING btree (customer_id);",
				"CREATE INDEX orders_status_created_at_idx ON public.orders USING btree (status, created_at) WHERE (status <> 'delivered'::text);",
				"ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customers(id);"},
		},
		{
			name: "products", share: 0.08, avgRow: 330, rows: &products{w: w},
			columns: []column{{"id", "bigint NOT NULL"}, {"sku", "text NOT NULL"}, {"name", "text NOT NULL"},
				{"description", "text"}, {"category", "text NOT NULL"}, {"price", "numeric(12,2) NOT NULL"},
				{"stock", "integer DEFAULT 0 NOT NULL"}, {"tags", "text[]"}, {"created_at", "timestamp with time zone DEFAULT now() NOT NULL"},
				{"updated_at", "timestamp with time zone DEFAULT now() NOT NULL"}},
			indexes: []string{"CREATE UNIQUE INDEX products_sku_key ON public.products USING btree (sku);",
				"CREATE INDEX products_category_idx ON public.products USING btree (category);"},
		},
	}
}

func tab(b []byte) []byte { return append(b, '\t') }

// appendWords appends n words of the vocabulary separated by spaces.
func (w *world) appendWords(b []byte, n int, r *rowRand) []byte {
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, w.vocab[r.skew(len(w.vocab))]...)
	}
	return b
}

// appendTitle appends n capitalised words.
func (w *world) appendTitle(b []byte, n int, r *rowRand) []byte {
	for i := 0; i < n; i++ {
		if i > 0 {
			b = append(b, ' ')
		}
		word := w.vocab[r.skew(len(w.vocab))]
		b = append(b, word[0]-'a'+'A')
		b = append(b, word[1:]...)
	}
	return b
}

// later returns a time after ts for an updated_at column; a changed row
// gets a different one.
func later(ts int64, r *rowRand) int64 {
	return ts + int64(r.m(1<<25))*1e6 + int64(r.n(1e6))
}

// priceOf is the list price in cents of a product, so that orders and
// products agree.
func priceOf(id int64) int64 { return 99 + int64(uint64(id)*2654435761%40000) }

func appendSKU(b []byte, id int64) []byte { return appendPad(append(b, "SKU-"...), id, 6) }

type customers struct{ w *world }

func (c *customers) advance(*rand.PCG) {}

var customerStatus = []string{"active", "active", "active", "active", "active", "active", "active", "pending", "suspended", "closed"}

func (c *customers) appendRow(b []byte, id, ts int64, r *rowRand) []byte {
	w := c.w
	fi, li := r.skew(len(firstNames)), r.skew(len(lastNames))
	b = tab(strconv.AppendInt(b, id, 10))
	switch r.n(4) {
	case 0:
		b = append(append(append(b, w.lowerFirst[fi]...), '.'), w.lowerLast[li]...)
	case 1:
		b = append(append(b, w.lowerFirst[fi][0]), w.lowerLast[li]...)
	case 2:
		b = append(append(append(b, w.lowerFirst[fi]...), '_'), w.lowerLast[li]...)
	default:
		b = append(b, w.lowerFirst[fi]...)
	}
	if r.chance(60) {
		b = strconv.AppendInt(b, int64(r.n(2000)), 10)
	}
	b = tab(append(append(b, '@'), pick(r, mailDomains)...))
	b = tab(append(append(append(b, firstNames[fi]...), ' '), lastNames[li]...))
	b = tab(appendHex(appendHex(b, r.u64(), 16), r.u64(), 16))
	b = tab(append(b, pick(r, countries)...))
	b = tab(append(b, customerStatus[r.m(len(customerStatus))]...))
	b = tab(appendCents(b, int64(r.skew(2000000))))
	b = tab(appendTimestamp(b, ts))
	upd := later(ts, r)
	b = tab(appendTimestamp(b, upd))
	if r.chance(20) {
		b = append(b, `\N`...)
	} else {
		b = appendTimestamp(b, upd+int64(r.m(1<<24))*1e6+int64(r.n(1e6)))
	}
	b = append(b, "\t{\"lang\": \""...)
	b = append(b, pick(r, languages)...)
	b = append(b, "\", \"theme\": \""...)
	b = append(b, [...]string{"light", "dark", "system"}[r.m(3)]...)
	b = append(b, "\", \"timezone\": \""...)
	b = append(b, pick(r, timezones)...)
	b = append(b, "\", \"newsletter\": "...)
	b = append(b, [...]string{"false", "true"}[r.m(2)]...)
	return append(b, '}')
}

// events are web analytics rows; consecutive rows mostly belong to one
// session, which shares its customer, session ID, address and browser.
type events struct {
	w        *world
	customer int64
	sessHi   uint64
	sessLo   uint64
	ip       uint64
	agent    int
	left     int
}

func (e *events) advance(seq *rand.PCG) {
	if e.left == 0 {
		e.customer = 1 + int64(uniform(seq.Uint64(), e.w.customers))
		e.sessHi, e.sessLo, e.ip = seq.Uint64(), seq.Uint64(), seq.Uint64()
		e.agent = uniform(seq.Uint64(), len(userAgents))
		e.left = 1 + uniform(seq.Uint64(), 24)
	}
	e.left--
}

var eventPaths = []string{"/", "/cart", "/account", "/search", "/checkout", "/orders", "/help", "/login"}

func (e *events) appendRow(b []byte, id, ts int64, r *rowRand) []byte {
	w := e.w
	b = tab(strconv.AppendInt(b, id, 10))
	b = tab(strconv.AppendInt(b, e.customer, 10))
	b = tab(appendUUID(b, e.sessHi, e.sessLo))
	kind := r.n(100)
	var name string
	switch {
	case kind < 55:
		name = "page_view"
	case kind < 75:
		name = "click"
	case kind < 83:
		name = "search"
	case kind < 91:
		name = "add_to_cart"
	case kind < 94:
		name = "checkout"
	case kind < 98:
		name = "login"
	default:
		name = "logout"
	}
	b = tab(append(b, name...))
	b = tab(appendTimestamp(b, ts))
	b = tab(appendIPv4(b, e.ip))
	b = tab(append(b, userAgents[e.agent]...))
	switch name {
	case "page_view", "click":
		if name == "page_view" {
			b = append(append(append(b, `{"ref": "`...), pick(r, referrers)...), `", "path": "`...)
		} else {
			b = append(b, `{"path": "`...)
		}
		if r.chance(60) {
			b = strconv.AppendInt(append(b, "/products/"...), 1+int64(r.skew(w.products)), 10)
		} else {
			b = append(b, pick(r, eventPaths)...)
		}
		if name == "click" {
			b = append(append(b, `", "target": "`...), w.vocab[r.skew(256)]...)
			b = append(append(b, '-'), w.vocab[r.skew(256)]...)
		}
		b = strconv.AppendInt(append(b, `", "duration_ms": `...), int64(r.m(30000)), 10)
	case "search":
		b = w.appendWords(append(b, `{"query": "`...), 1+r.n(3), r)
		b = strconv.AppendInt(append(b, `", "results": `...), int64(r.m(200)), 10)
	case "add_to_cart":
		sku := 1 + int64(r.skew(w.products))
		b = strconv.AppendInt(append(b, `{"qty": `...), 1+int64(r.m(4)), 10)
		b = appendSKU(append(b, `, "sku": "`...), sku)
		b = appendCents(append(b, `", "price": `...), priceOf(sku))
	case "checkout":
		b = strconv.AppendInt(append(b, `{"items": `...), 1+int64(r.skew(8)), 10)
		b = appendCents(append(b, `, "total": `...), 500+int64(r.m(50000)))
		b = append(append(append(b, `, "currency": "`...), pick(r, currencies)...), '"')
	case "login":
		b = append(b, [...]string{`{"mfa": false`, `{"mfa": true`}[r.n(2)]...)
		b = append(append(append(b, `, "method": "`...), [...]string{"password", "password", "sso", "magic_link"}[r.n(4)]...), '"')
		b = strconv.AppendInt(append(b, `, "attempts": `...), 1+int64(r.m(3)), 10)
	default:
		b = strconv.AppendInt(append(b, `{"idle_s": `...), int64(r.m(3600)), 10)
	}
	return append(b, '}')
}

type orders struct {
	w     *world
	addr  rowRand
	items []byte
}

func (o *orders) advance(*rand.PCG) {}

var orderStatus = []string{"delivered", "delivered", "delivered", "delivered", "delivered", "delivered", "shipped", "processing", "cancelled", "refunded", "pending"}

func (o *orders) appendRow(b []byte, id, ts int64, r *rowRand) []byte {
	w := o.w
	customer := 1 + int64(r.n(w.customers))
	b = tab(strconv.AppendInt(b, id, 10))
	b = tab(strconv.AppendInt(b, customer, 10))
	b = tab(append(b, orderStatus[r.m(len(orderStatus))]...))
	b = tab(append(b, pick(r, currencies)...))

	items := append(o.items[:0], '[')
	var subtotal int64
	for i, n := 0, 1+r.skew(6); i < n; i++ {
		if i > 0 {
			items = append(items, ", "...)
		}
		sku, qty := 1+int64(r.skew(w.products)), 1+int64(r.skew(4))
		subtotal += qty * priceOf(sku)
		items = strconv.AppendInt(append(items, `{"qty": `...), qty, 10)
		items = appendSKU(append(items, `, "sku": "`...), sku)
		items = append(appendCents(append(items, `", "price": `...), priceOf(sku)), '}')
	}
	o.items = append(items, ']')
	tax := subtotal * int64(5+r.n(16)) / 100
	b = tab(appendCents(b, subtotal))
	b = tab(appendCents(b, tax))
	b = tab(appendCents(b, subtotal+tax))
	b = tab(appendTimestamp(b, ts))
	b = tab(appendTimestamp(b, later(ts, r)))

	// The same customer always ships to the same address.
	a := &o.addr
	a.reset(uint64(customer), 0, false)
	b = strconv.AppendInt(b, 1+int64(a.n(9999)), 10)
	b = w.appendTitle(append(b, ' '), 1, a)
	b = append(append(append(b, ' '), pick(a, streets)...), ", "...)
	b = append(append(b, pick(a, cities)...), ", "...)
	b = append(append(b, pick(a, states)...), ' ')
	b = tab(appendPad(b, int64(a.n(99999)), 5))

	b = append(b, o.items...)
	if r.m(100) < 12 {
		return w.appendWords(append(b, '\t'), 3+r.n(8), r)
	}
	return append(b, "\t\\N"...)
}

type products struct{ w *world }

func (p *products) advance(*rand.PCG) {}

func (p *products) appendRow(b []byte, id, ts int64, r *rowRand) []byte {
	w := p.w
	b = tab(strconv.AppendInt(b, id, 10))
	b = tab(appendSKU(b, id))
	b = tab(w.appendTitle(b, 2+r.n(2), r))
	b = w.appendWords(append(w.appendTitle(b, 1, r), ' '), 8+r.n(40), r)
	b = append(b, ".\t"...)
	b = tab(append(b, pick(r, categories)...))
	b = tab(appendCents(b, priceOf(id)+int64(r.m(20))*50))
	b = tab(strconv.AppendInt(b, int64(r.m(500)), 10))
	b = append(b, '{')
	for i, n := 0, r.n(5); i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, w.vocab[r.skew(512)]...)
	}
	b = tab(append(b, '}'))
	b = tab(appendTimestamp(b, ts))
	return appendTimestamp(b, later(ts, r))
}
