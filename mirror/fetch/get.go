package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Validators are the HTTP cache validators of a document, kept between runs
// so that an unchanged index is not downloaded again.
type Validators struct {
	ETag         string
	LastModified string
}

// IsZero reports whether there is no validator.
func (v Validators) IsZero() bool { return v.ETag == "" && v.LastModified == "" }

// maxValidator bounds the length of a validator kept from a response.
const maxValidator = 1024

// getPrealloc bounds the buffer Get sets aside before a body's bytes come.
const getPrealloc = 1 << 20

func validatorsOf(h http.Header) Validators {
	v := Validators{ETag: h.Get("ETag"), LastModified: h.Get("Last-Modified")}
	if len(v.ETag) > maxValidator || strings.ContainsAny(v.ETag, "\r\n") {
		v.ETag = ""
	}
	if len(v.LastModified) > maxValidator || strings.ContainsAny(v.LastModified, "\r\n") {
		v.LastModified = ""
	}
	return v
}

// Get fetches a small document (an index, a checksum list, a signature) into
// memory, reading at most maxSize bytes (ErrTooLarge beyond). When prev holds
// validators from an earlier fetch, Get sends If-None-Match and
// If-Modified-Since; a 304 answer returns notModified = true, no body, and
// the validators (prev, updated by the answer). It retries like Download.
// The error is an *Error naming the URL.
func (c *Client) Get(ctx context.Context, rawURL string, maxSize int64, prev Validators) (body []byte, v Validators, notModified bool, err error) {
	fail := func(n int, err error) ([]byte, Validators, bool, error) {
		return nil, Validators{}, false, &Error{URL: rawURL, Attempts: n, Err: err}
	}
	if err := checkURL(rawURL); err != nil {
		return fail(0, err)
	}
	if maxSize < 0 {
		return fail(0, fmt.Errorf("negative size limit %d", maxSize))
	}
	for attempt := 1; ; attempt++ {
		body, v, nm, err := c.getOnce(ctx, rawURL, maxSize, prev)
		if err == nil {
			return body, v, nm, nil
		}
		err = classify(ctx, err)
		var ae *attemptError
		errors.As(err, &ae)
		if !ae.retry || attempt > c.opt.Retries {
			return fail(attempt, ae.err)
		}
		if err := sleep(ctx, c.backoff(attempt, ae.retryAfter)); err != nil {
			return fail(attempt, err)
		}
	}
}

func (c *Client) getOnce(ctx context.Context, rawURL string, maxSize int64, prev Validators) ([]byte, Validators, bool, error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := c.newRequest(actx, rawURL)
	if err != nil {
		return nil, Validators{}, false, permanent(err)
	}
	if prev.ETag != "" {
		req.Header.Set("If-None-Match", prev.ETag)
	}
	if prev.LastModified != "" {
		req.Header.Set("If-Modified-Since", prev.LastModified)
	}
	resp, err := c.do(actx, cancel, req)
	if err != nil {
		return nil, Validators{}, false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		c.drain(cancel, resp.Body)
		if prev.IsZero() {
			return nil, Validators{}, false, permanent(fmt.Errorf("server answered 304 Not Modified to an unconditional request"))
		}
		v := validatorsOf(resp.Header)
		if v.ETag == "" {
			v.ETag = prev.ETag
		}
		if v.LastModified == "" {
			v.LastModified = prev.LastModified
		}
		return nil, v, true, nil
	default:
		c.drain(cancel, resp.Body)
		return nil, Validators{}, false, statusError(resp, rawURL)
	}
	if resp.ContentLength > maxSize {
		c.drain(cancel, resp.Body)
		return nil, Validators{}, false, permanent(fmt.Errorf("server announces %d bytes, limit %d: %w", resp.ContentLength, maxSize, ErrTooLarge))
	}
	var buf bytes.Buffer
	if resp.ContentLength > 0 {
		// Room for what the server announces, up to getPrealloc: a server
		// that announces the limit and then stalls gets no more memory
		// than the bytes it sends.
		buf.Grow(int(min(resp.ContentLength, getPrealloc)))
	}
	n, err := c.copyBody(actx, cancel, &buf, resp.Body, maxSize+1)
	if n > maxSize {
		return nil, Validators{}, false, permanent(fmt.Errorf("more than %d bytes: %w", maxSize, ErrTooLarge))
	}
	if err != nil {
		return nil, Validators{}, false, err
	}
	return buf.Bytes(), validatorsOf(resp.Header), false, nil
}
