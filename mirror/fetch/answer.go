package fetch

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/url"
	"strings"
)

// The wire format of GetMany's pipelined requests and answers.
//
// GetMany writes its GET requests and reads their answers itself instead
// of through net/http's Request.Write and ReadResponse, which build a
// Request, a Response and a header map per document: a no-op sync of
// 20,000 signatures spent more time there than in the rest of its request
// handling. The reader takes a strict subset of HTTP/1.1, the shape every
// static server sends (nginx, Apache, Go's file server, CDNs):
//
//   - a status line "HTTP/1.1 NNN reason", lines ending in CRLF;
//   - header names of token characters, values without control bytes
//     other than tab, no folded lines;
//   - the body framed by one Content-Length of decimal digits, or by
//     "Transfer-Encoding: chunked" (chunk sizes in hex, extensions
//     ignored, no trailer fields), or (without either) by the end of the
//     connection; both framings at once are refused;
//   - "Connection: close" ends the connection after the answer.
//
// Anything else is errAnswer: pipelining to that server stops and the
// answers still owed are left to Get, which reads them with net/http. So
// what this reader accepts, net/http reads the same way (same status, same
// body, same bytes consumed); FuzzReadAnswer checks that on every input.

// errAnswer is an answer outside the subset answerReader takes.
var errAnswer = errors.New("answer outside the pipelined subset of HTTP/1.1")

// errEnded is a connection that ended (or failed) before an answer began:
// a server's keep-alive limit, normally.
var errEnded = errors.New("connection ended between answers")

// errInformational is a 1xx answer, which a GET does not expect: GetMany
// stops rather than guess which answer belongs to which request.
var errInformational = errors.New("informational (1xx) answer")

// answer is one answer as answerReader.read read it.
type answer struct {
	status int
	body   []byte // a 200's body, within the size limit; nil otherwise
	whole  bool   // read to its end: the next answer follows on the connection
	close  bool   // the server ends the connection after this answer
}

// answerReader reads the answers of one connection. lim is the
// boundedReader under r: read allows it maxHeaderBytes for the
// status line and the headers, then maxSize+chunkSlack for the body.
type answerReader struct {
	r       *bufio.Reader
	lim     *boundedReader
	maxSize int64
	arena   []byte // bodies of known length are carved from it
}

// framing is what the headers of an answer said about its body.
type framing struct {
	length  int64 // Content-Length, or -1
	chunked bool
	close   bool
}

// read reads the next answer.
func (a *answerReader) read() (answer, error) {
	a.lim.n = maxHeaderBytes
	if _, err := a.r.Peek(1); err != nil {
		return answer{}, errEnded
	}
	status, err := a.statusLine()
	if err != nil {
		return answer{}, err
	}
	f, err := a.headers()
	if err != nil {
		return answer{}, err
	}
	if status < 200 {
		return answer{}, errInformational
	}
	a.lim.n += a.maxSize + chunkSlack
	ans := answer{status: status, close: f.close}
	limit := a.maxSize
	if status != 200 {
		limit = maxErrorBody
	}
	switch {
	case status == 204 || status == 304:
		// No body, whatever the headers say (RFC 9112, section 6.3).
		ans.whole = true
		return ans, nil
	case f.chunked:
		ans.body, ans.whole, err = a.chunked(limit, status == 200)
	case f.length >= 0:
		ans.body, ans.whole, err = a.sized(f.length, limit, status == 200)
	default:
		// Framed by the end of the connection.
		ans.close = true
		ans.body, ans.whole, err = a.toEnd(limit, status == 200)
	}
	if err != nil {
		return answer{}, err
	}
	return ans, nil
}

// line returns the next line without its CRLF; the slice is valid until
// the next read.
func (a *answerReader) line() ([]byte, error) {
	l, err := a.r.ReadSlice('\n')
	if err != nil {
		return nil, errAnswer
	}
	if len(l) < 2 || l[len(l)-2] != '\r' {
		return nil, errAnswer
	}
	return l[:len(l)-2], nil
}

// statusLine reads "HTTP/1.1 NNN[ reason]" and returns NNN.
func (a *answerReader) statusLine() (int, error) {
	l, err := a.line()
	if err != nil {
		return 0, err
	}
	const proto = "HTTP/1.1 "
	if len(l) < len(proto)+3 || string(l[:len(proto)]) != proto || (len(l) > len(proto)+3 && l[len(proto)+3] != ' ') {
		return 0, errAnswer
	}
	code := 0
	for _, c := range l[len(proto) : len(proto)+3] {
		if c < '0' || c > '9' {
			return 0, errAnswer
		}
		code = 10*code + int(c-'0')
	}
	if code < 100 || !fieldValue(l[len(proto)+3:]) {
		return 0, errAnswer
	}
	return code, nil
}

// headers reads the header fields up to the empty line.
func (a *answerReader) headers() (framing, error) {
	f := framing{length: -1}
	sawLength := false
	for {
		l, err := a.line()
		if err != nil {
			return f, err
		}
		if len(l) == 0 {
			break
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 {
			return f, errAnswer
		}
		name, value := l[:colon], trimOWS(l[colon+1:])
		for _, c := range name {
			if !tokenByte(c) {
				return f, errAnswer
			}
		}
		if !fieldValue(value) {
			return f, errAnswer
		}
		switch {
		case asciiEqualFold(name, "content-length"):
			if sawLength || len(value) == 0 || len(value) > 18 {
				return f, errAnswer
			}
			sawLength = true
			f.length = 0
			for _, c := range value {
				if c < '0' || c > '9' {
					return f, errAnswer
				}
				f.length = 10*f.length + int64(c-'0')
			}
		case asciiEqualFold(name, "transfer-encoding"):
			if f.chunked || !asciiEqualFold(value, "chunked") {
				return f, errAnswer
			}
			f.chunked = true
		case asciiEqualFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				if asciiEqualFold(trimOWS(tok), "close") {
					f.close = true
				}
			}
		}
	}
	if f.chunked && sawLength {
		return f, errAnswer
	}
	return f, nil
}

// sized reads a body of n bytes: kept when keep and n <= limit, skipped
// when n <= limit, left unread (whole false) when larger.
func (a *answerReader) sized(n, limit int64, keep bool) ([]byte, bool, error) {
	if n > limit {
		return nil, false, nil
	}
	if !keep {
		if _, err := a.r.Discard(int(n)); err != nil {
			return nil, false, errAnswer
		}
		return nil, true, nil
	}
	if n == 0 {
		return []byte{}, true, nil
	}
	if int64(len(a.arena)) < n {
		a.arena = make([]byte, max(n, 32<<10))
	}
	b := a.arena[:n:n]
	a.arena = a.arena[n:]
	if _, err := io.ReadFull(a.r, b); err != nil {
		return nil, false, errAnswer
	}
	return b, true, nil
}

// chunked reads a chunked body of at most limit bytes (kept when keep).
func (a *answerReader) chunked(limit int64, keep bool) ([]byte, bool, error) {
	var body []byte
	var total int64
	for {
		l, err := a.line()
		if err != nil {
			return nil, false, err
		}
		if i := bytes.IndexByte(l, ';'); i >= 0 {
			if !fieldValue(l[i+1:]) {
				return nil, false, errAnswer
			}
			l = l[:i]
		}
		if len(l) == 0 || len(l) > 15 {
			return nil, false, errAnswer
		}
		var size int64
		for _, c := range l {
			d := hexDigit(c)
			if d < 0 {
				return nil, false, errAnswer
			}
			size = size<<4 | int64(d)
		}
		if size == 0 {
			break
		}
		if total += size; total > limit {
			return nil, false, nil
		}
		if keep {
			body = append(body, make([]byte, size)...)
			if _, err := io.ReadFull(a.r, body[len(body)-int(size):]); err != nil {
				return nil, false, errAnswer
			}
		} else if _, err := a.r.Discard(int(size)); err != nil {
			return nil, false, errAnswer
		}
		if l, err := a.line(); err != nil || len(l) != 0 {
			return nil, false, errAnswer
		}
	}
	// No trailer fields: the empty line right after the last chunk.
	if l, err := a.line(); err != nil || len(l) != 0 {
		return nil, false, errAnswer
	}
	if keep && body == nil {
		body = []byte{}
	}
	return body, true, nil
}

// toEnd reads a body framed by the end of the connection, of at most limit
// bytes (kept when keep).
func (a *answerReader) toEnd(limit int64, keep bool) ([]byte, bool, error) {
	b, err := io.ReadAll(io.LimitReader(a.r, limit+1))
	if err != nil || int64(len(b)) > limit {
		return nil, false, nil
	}
	if !keep {
		return nil, true, nil
	}
	return b, true, nil
}

// requestTarget returns the request target of u ("/path?query"), and false
// when it holds a byte that has no place on a request line (Get sends
// those URLs, or refuses them).
func requestTarget(u *url.URL) (string, bool) {
	t := u.RequestURI()
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return "", false
		}
	}
	return t, true
}

// appendRequest appends a GET request for target to host, as
// http.Request.Write writes it (TestAppendRequestIsRequestWrite).
func appendRequest(b []byte, target, host, userAgent string) []byte {
	b = append(b, "GET "...)
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nUser-Agent: "...)
	b = append(b, userAgent...)
	return append(b, "\r\n\r\n"...)
}

// plainHeader reports whether s can go into a request header as it is:
// printable ASCII (a Host, the User-Agent) and at least one byte.
func plainHeader(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return s != ""
}

// fieldValue reports whether v has no control bytes other than tab.
func fieldValue(v []byte) bool {
	for _, c := range v {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// tokenByte reports whether c may be part of a header name (RFC 9110
// tchar).
func tokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c != 0 && strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func trimOWS(b []byte) []byte {
	return bytes.Trim(b, " \t")
}

// asciiEqualFold compares b with the lower-case ASCII word s, ignoring
// the case of b's letters.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func hexDigit(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
