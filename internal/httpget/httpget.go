// Package httpget fetches a page from a server that may still be starting:
// the examples and the end-to-end tests use it on loopback and on
// addresses inside namespaces they made.
package httpget

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// Get GETs url and returns the body of a 200 answer, retrying every 100 ms
// for up to five seconds (50 tries, each with a 2 s timeout).
func Get(url string) (string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		resp, err := client.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(body), nil
			}
			err = fmt.Errorf("status %d, read error %v", resp.StatusCode, rerr)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("GET %s: %w", url, last)
}
