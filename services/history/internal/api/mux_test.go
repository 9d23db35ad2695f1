package api_test

import (
	"net/http"

	"github.com/roomcast/roomcast/services/history/internal/api"
)

func mux(a *api.API) http.Handler {
	m := http.NewServeMux()
	a.Mount(m)
	return m
}
