// Command healthcheck asks an HTTP endpoint whether the process beside it is
// healthy: exit 0 on a 2xx answer, 1 otherwise. The service images are
// distroless (no shell, curl or wget), so Docker and ECS container health
// checks run this binary, which the Dockerfile puts in every image.
//
// Usage: healthcheck [URL]   (default http://127.0.0.1:8080/healthz)
//
// It imports only the standard library and is built on its own
// (GOWORK=off go build main.go), outside the workspace modules.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	url := "http://127.0.0.1:8080/healthz"
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	// Shorter than any health check timeout we configure (5 s), so a hung
	// process is reported as unhealthy by us rather than killed mid-probe.
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintln(os.Stderr, "healthcheck:", url, resp.Status)
		os.Exit(1)
	}
}
