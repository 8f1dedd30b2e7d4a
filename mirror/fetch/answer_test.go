package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// readAll reads the answers of stream with answerReader until one ends the
// connection or is refused, and returns them with the offset each ended at.
func readAll(stream []byte, maxSize int64) (answers []answer, ends []int64, err error) {
	src := bytes.NewReader(stream)
	lim := &boundedReader{r: src}
	ar := &answerReader{r: bufio.NewReaderSize(lim, 16<<10), lim: lim, maxSize: maxSize}
	for {
		a, err := ar.read()
		if err != nil {
			return answers, ends, err
		}
		answers = append(answers, a)
		ends = append(ends, int64(len(stream))-int64(src.Len())-int64(ar.r.Buffered()))
		if !a.whole || a.close {
			return answers, ends, nil
		}
	}
}

// okAnswer is a clean 200 answer with body.
func okAnswer(body string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// answerSeeds are streams of answers for the pipelined reader's fuzz
// targets: clean ones (nginx's headers among them), and each way an answer
// can leave the subset the reader takes or break its bounds.
func answerSeeds() []string {
	return []string{
		okAnswer("one") + okAnswer("two") + okAnswer(""),
		"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Wed, 25 Nov 2026 17:00:00 GMT\r\nContent-Type: application/octet-stream\r\nContent-Length: 4\r\nLast-Modified: Wed, 25 Nov 2026 16:00:00 GMT\r\nConnection: keep-alive\r\nETag: \"1-4\"\r\nAccept-Ranges: bytes\r\n\r\nsig\n",
		okAnswer("one") + "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n" + okAnswer("three"),
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\none\r\nA\r\n0123456789\r\n0\r\n\r\n" + okAnswer("two"),
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTrailer: x\r\n\r\n",
		okAnswer("one") + "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 3\r\n\r\ntwo",
		"HTTP/1.1 200 OK\r\n\r\nuntil the end",
		"HTTP/1.0 200 OK\r\n\r\nuntil the end",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n" + okAnswer("y"),
		"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n" + okAnswer("y"),
		"HTTP/1.1 100 Continue\r\n\r\n" + okAnswer("one"),
		"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
		"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
		"HTTP/1.1 200 OK\r\n Folded: yes\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\nshort",
		"HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n" + okAnswer("two"),
	}
}

// FuzzReadAnswer checks the pipelined reader against net/http: every answer
// answerReader takes, http.ReadResponse reads the same way, from the same
// offset: same status, same body, same end, same decision on closing.
func FuzzReadAnswer(f *testing.F) {
	for _, seed := range answerSeeds() {
		f.Add([]byte(seed))
	}
	const maxSize = 64
	f.Fuzz(func(t *testing.T, stream []byte) {
		answers, ends, _ := readAll(stream, maxSize)
		start := int64(0)
		for k, a := range answers {
			rest := stream[start:]
			src := bytes.NewReader(rest)
			br := bufio.NewReader(src)
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
			if err != nil {
				t.Fatalf("answer %d: taken here (status %d), refused by net/http: %v", k, a.status, err)
			}
			if resp.StatusCode != a.status {
				t.Fatalf("answer %d: status %d here, %d by net/http", k, a.status, resp.StatusCode)
			}
			if !a.whole {
				resp.Body.Close()
				return // not read to its end: nothing follows
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("answer %d: net/http could not read the body taken here: %v", k, err)
			}
			if a.body != nil && !bytes.Equal(a.body, body) {
				t.Fatalf("answer %d: body %q here, %q by net/http", k, a.body, body)
			}
			if a.body != nil && a.status != 200 {
				t.Fatalf("answer %d: a body kept for status %d", k, a.status)
			}
			if int64(len(a.body)) > maxSize {
				t.Fatalf("answer %d: a body of %d bytes, limit %d", k, len(a.body), maxSize)
			}
			end := start + int64(len(rest)) - int64(src.Len()) - int64(br.Buffered())
			if end != ends[k] {
				t.Fatalf("answer %d ends at %d here, at %d for net/http", k, ends[k], end)
			}
			if a.close != resp.Close {
				t.Fatalf("answer %d: close %v here, %v for net/http", k, a.close, resp.Close)
			}
			start = end
		}
	})
}

// TestReadAnswerRefuses: answers outside the subset are refused with
// errAnswer (pipelining stops; Get takes over), a 1xx with
// errInformational, a connection ended between answers with errEnded.
func TestReadAnswerRefuses(t *testing.T) {
	for _, tc := range []struct {
		stream string
		want   error
	}{
		{"", errEnded},
		{"HTTP/1.1 100 Continue\r\n\r\n", errInformational},
		{"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", errAnswer},
		{"HTTP/1.1 200 OK\nContent-Length: 1\n\nx", errAnswer},
		{"HTTP/1.1 200 OK\r\n Folded: yes\r\n\r\n", errAnswer},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", errAnswer},
		{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", errAnswer},
		{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", errAnswer},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", errAnswer},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTrailer: x\r\n\r\n", errAnswer},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", errAnswer},
		{"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", errAnswer},
		{"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", errAnswer},
		{"HTTP/1.1 20x OK\r\n\r\n", errAnswer},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", errAnswer},
		{"SSH-2.0-OpenSSH\r\n\r\n", errAnswer},
		{"HTTP/1.1 200 OK\r\nX-Junk: " + strings.Repeat("j", maxHeaderBytes) + "\r\n\r\n", errAnswer},
	} {
		if _, _, err := readAll([]byte(tc.stream), 64); !errors.Is(err, tc.want) {
			t.Errorf("%.60q: got %v, want %v", tc.stream, err, tc.want)
		}
	}
	// Bodies over their limits are not read, and end the connection's use.
	for _, stream := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n" + strings.Repeat("x", 65),
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n" + strings.Repeat("x", 65) + "\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("x", 65),
		"HTTP/1.1 404 Not Found\r\nContent-Length: 70000\r\n\r\n",
	} {
		answers, _, err := readAll([]byte(stream), 64)
		if err != nil || len(answers) != 1 || answers[0].whole || answers[0].body != nil {
			t.Errorf("%.60q: got %+v, %v; want one answer, not whole, no body", stream, answers, err)
		}
	}
}

// TestAppendRequestIsRequestWrite: GetMany's requests are the bytes
// net/http's Request.Write sends for the same GET.
func TestAppendRequestIsRequestWrite(t *testing.T) {
	for _, raw := range []string{
		"http://example.org/pool/a.tar.gz.asc",
		"https://example.org:8443/dir/with%20space/x.sig?v=1&w=%2F",
		"http://127.0.0.1:8080/",
		"http://[::1]:8080/a/b/../c",
		"http://example.org/caf%C3%A9/pkg.minisig",
		"http://example.org/path;params/x",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		target, ok := requestTarget(u)
		if !ok || !plainHeader(u.Host) {
			t.Fatalf("%s: not pipelined", raw)
		}
		var want bytes.Buffer
		req := &http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Header: http.Header{"User-Agent": {"mirror/test"}}}
		if err := req.Write(&want); err != nil {
			t.Fatal(err)
		}
		if got := appendRequest(nil, target, u.Host, "mirror/test"); string(got) != want.String() {
			t.Errorf("%s:\n got %q\nwant %q", raw, got, want.String())
		}
	}
}

// TestGetManyOddURLs: URLs whose request line or Host header would need
// net/http's care (a space in the query, a host that is not ASCII) and a
// User-Agent with a control byte are left to Get, not sent as they are.
func TestGetManyOddURLs(t *testing.T) {
	var mu sync.Mutex
	var got []string
	requests := func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprint(got)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.RequestURI())
		mu.Unlock()
		w.Write(docFor(r.URL.Path))
	}))
	defer srv.Close()
	urls := []string{srv.URL + "/d/1?a b", "http://bücher.example/d/2", srv.URL + "/d/3"}
	bodies := newClient(t, testOptions()).GetMany(context.Background(), urls, 1000)
	checkMany(t, urls, bodies, func(i int) []byte {
		if i == 2 {
			return docFor("/d/3")
		}
		return nil
	})
	if r := requests(); r != "[/d/3]" {
		t.Errorf("the server got %s, want only /d/3", r)
	}
	opt := testOptions()
	opt.UserAgent = "mirror\r\nX-Injected: 1"
	bodies = newClient(t, opt).GetMany(context.Background(), urls[2:], 1000)
	if r := requests(); bodies[0] != nil || r != "[/d/3]" {
		t.Errorf("a User-Agent with CRLF was pipelined: %q, requests %s", bodies, r)
	}
}
