package api

import (
	"net/http"
	"strings"

	"github.com/rs/cors"
)

// CORS lets pages on origins call the end-user endpoints
// (/v1/apps/{app}/auth/...) from the browser: they carry the access token
// as a bearer header, not a cookie, so no credentials mode is needed.
// Every other endpoint (admin, token issuance, the key feed) stays
// same-origin only. With no origins, next is returned as it is.
func CORS(next http.Handler, origins []string) http.Handler {
	if len(origins) == 0 {
		return next
	}
	withCORS := cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodDelete},
		AllowedHeaders: []string{"Authorization", "Content-Type"},
		ExposedHeaders: []string{"Retry-After"},
		MaxAge:         600,
	}).Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/apps/"); ok && strings.Contains(rest, "/auth/") {
			withCORS.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
