package gen

import (
	"math/rand/v2"
	"strconv"
)

// rowRand is the randomness of one row. Every column draws from base, so a
// row is a pure function of its seed. A changed row replays the same seed
// with mutate set: the mutable columns then take a different value from alt,
// while every other column, and every later draw, stays as in the original.
type rowRand struct {
	base, alt rand.PCG
	mutate    bool
}

func (r *rowRand) reset(seed, altSeed uint64, mutate bool) {
	r.base.Seed(seed, 0x9e3779b97f4a7c15)
	r.alt.Seed(altSeed, 0xbf58476d1ce4e5b9)
	r.mutate = mutate
}

func (r *rowRand) u64() uint64 { return r.base.Uint64() }

// n returns a value in [0, k), k < 2^32.
func (r *rowRand) n(k int) int { return uniform(r.base.Uint64(), k) }

// m returns a value in [0, k) from a mutable column: in a changed row it
// differs from the original's value whenever k > 1.
func (r *rowRand) m(k int) int {
	v := r.n(k)
	if r.mutate && k > 1 {
		v = (v + 1 + uniform(r.alt.Uint64(), k-1)) % k
	}
	return v
}

// chance reports true with probability pct/100.
func (r *rowRand) chance(pct int) bool { return r.n(100) < pct }

// skew returns a value in [0, k) biased towards small values, a cheap
// stand-in for the Zipf-like frequencies of real words and keys.
func (r *rowRand) skew(k int) int {
	u := float64(r.base.Uint64()>>11) / (1 << 53)
	return int(u * u * u * float64(k))
}

func uniform(x uint64, k int) int { return int((x >> 32) * uint64(k) >> 32) }

func pick(r *rowRand, list []string) string { return list[r.n(len(list))] }

const hexDigits = "0123456789abcdef"

func appendHex(b []byte, x uint64, digits int) []byte {
	for i := digits - 1; i >= 0; i-- {
		b = append(b, hexDigits[(x>>(4*uint(i)))&15])
	}
	return b
}

// appendUUID appends a version-4 UUID in its canonical text form.
func appendUUID(b []byte, hi, lo uint64) []byte {
	hi = hi&^0xf000 | 0x4000
	lo = lo&^(3<<62) | 2<<62
	b = appendHex(b, hi>>32, 8)
	b = append(b, '-')
	b = appendHex(b, hi>>16, 4)
	b = append(b, '-')
	b = appendHex(b, hi, 4)
	b = append(b, '-')
	b = appendHex(b, lo>>48, 4)
	b = append(b, '-')
	return appendHex(b, lo, 12)
}

func appendIPv4(b []byte, x uint64) []byte {
	for i := 0; i < 4; i++ {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendUint(b, (x>>(8*uint(i)))&255, 10)
	}
	return b
}

// appendCents appends cents as a decimal with two fraction digits, the way
// PostgreSQL prints numeric(12,2).
func appendCents(b []byte, cents int64) []byte {
	if cents < 0 {
		b = append(b, '-')
		cents = -cents
	}
	b = strconv.AppendInt(b, cents/100, 10)
	c := cents % 100
	return append(b, '.', byte('0'+c/10), byte('0'+c%10))
}

func appendPad(b []byte, v int64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// appendTimestamp appends a Unix time in microseconds as PostgreSQL prints a
// timestamptz in UTC: "2021-03-04 05:06:07.123456+00".
func appendTimestamp(b []byte, us int64) []byte {
	sec, frac := us/1e6, us%1e6
	days, sod := sec/86400, sec%86400
	y, mo, d := civil(days)
	b = appendPad(b, y, 4)
	b = append(b, '-')
	b = appendPad(b, mo, 2)
	b = append(b, '-')
	b = appendPad(b, d, 2)
	b = append(b, ' ')
	b = appendPad(b, sod/3600, 2)
	b = append(b, ':')
	b = appendPad(b, sod/60%60, 2)
	b = append(b, ':')
	b = appendPad(b, sod%60, 2)
	if frac != 0 {
		b = append(b, '.')
		b = appendPad(b, frac, 6)
	}
	return append(b, '+', '0', '0')
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's days_from_civil, inverted).
func civil(z int64) (y, m, d int64) {
	z += 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// vocabulary builds n pseudo-words from syllables, short ones first, so that
// a skewed index draws short words more often, as in real text.
func vocabulary(n int) []string {
	syl := []string{"ka", "lo", "mi", "ter", "ran", "so", "vel", "ni", "dor", "pa", "en", "tri",
		"sa", "mon", "gu", "re", "li", "ta", "bor", "fi", "an", "ste", "ul", "co", "nar", "pe",
		"di", "ro", "lus", "ma", "in", "ve", "sto", "qua", "ber", "xe", "ho", "cal", "tem", "ur"}
	r := rand.New(rand.NewPCG(20260101, 1))
	words := make([]string, 0, n)
	seen := make(map[string]bool, n)
	for len(words) < n {
		k := 1 + len(words)*4/n + r.IntN(2)
		w := ""
		for i := 0; i < k; i++ {
			w += syl[r.IntN(len(syl))]
		}
		if !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	return words
}

var (
	firstNames = []string{"James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
		"David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
		"Sarah", "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty",
		"Anthony", "Margaret", "Mark", "Sandra", "Donald", "Ashley", "Steven", "Kimberly", "Paul",
		"Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda",
		"Brian", "Dorothy", "George", "Melissa", "Timothy", "Deborah", "Ronald", "Stephanie", "Jason",
		"Rebecca", "Edward", "Sharon", "Jeffrey", "Laura", "Ryan", "Cynthia", "Jacob", "Kathleen",
		"Gary", "Amy", "Nicholas", "Angela", "Eric", "Shirley", "Jonathan", "Anna", "Stephen", "Brenda",
		"Larry", "Pamela", "Justin", "Emma", "Scott", "Nicole", "Brandon", "Helen", "Benjamin",
		"Samantha", "Samuel", "Katherine", "Gregory", "Christine", "Alexander", "Debra", "Frank",
		"Rachel", "Patrick", "Carolyn", "Raymond", "Janet", "Jack", "Catherine", "Dennis", "Maria",
		"Jerry", "Heather", "Lukas", "Sofia", "Mateo", "Yuki", "Priya", "Ahmed", "Olga", "Chen"}
	lastNames = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
		"Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas",
		"Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris",
		"Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
		"Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker",
		"Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
		"Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
		"Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
		"Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
		"Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price",
		"Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez",
		"Schmidt", "Weber", "Kowalski", "Novak", "Tanaka", "Singh", "Ivanova", "Rossi", "Dubois"}
	mailDomains = []string{"gmail.com", "gmail.com", "gmail.com", "yahoo.com", "outlook.com",
		"hotmail.com", "icloud.com", "proton.me", "gmx.de", "web.de", "example.org", "aol.com"}
	countries  = []string{"US", "US", "US", "DE", "GB", "FR", "CA", "IN", "BR", "JP", "NL", "ES", "IT", "PL", "AU", "MX", "SE"}
	timezones  = []string{"America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/Berlin", "Europe/London", "Europe/Paris", "Asia/Tokyo", "Asia/Kolkata", "UTC"}
	languages  = []string{"en", "en", "en", "de", "fr", "es", "ja", "pt", "it", "pl"}
	cities     = []string{"Springfield", "Riverside", "Franklin", "Greenville", "Bristol", "Clinton", "Fairview", "Salem", "Madison", "Georgetown", "Arlington", "Ashland", "Dover", "Oxford", "Jackson", "Burlington", "Manchester", "Milton", "Newport", "Auburn", "Dayton", "Lexington", "Milford", "Winchester", "Hudson", "Kingston", "Mount Vernon", "Oakland", "Centerville", "Marion"}
	states     = []string{"CA", "TX", "FL", "NY", "PA", "IL", "OH", "GA", "NC", "MI", "NJ", "VA", "WA", "AZ", "MA", "TN", "IN", "MO", "MD", "WI"}
	streets    = []string{"St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Way", "Ct", "Pl"}
	currencies = []string{"USD", "USD", "USD", "EUR", "EUR", "GBP", "CAD", "JPY"}
	categories = []string{"books", "electronics", "garden", "toys", "kitchen", "sports", "clothing", "beauty", "automotive", "office", "music", "tools"}
	referrers  = []string{"direct", "google", "google", "google", "bing", "newsletter", "facebook", "twitter", "partner"}
	userAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 Edg/119.0.2151.97",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
		"okhttp/4.12.0",
		"python-requests/2.31.0",
	}
)
