package main

import (
	"net/http"

	"github.com/hearth-iot/hearth/internal/admin"
	"github.com/hearth-iot/hearth/internal/household"
)

// protectedRoutes are the admin routes that need the token: the device registry
// (device.go), and the household's rights that change something or hand out
// everything (docs/privacy.md).
func (a *agent) protectedRoutes() map[string]http.Handler {
	r := a.registryRoutes()
	r["PUT /v1/consent/{category}"] = sameOrigin(a.consentPut)
	r["POST /v1/forget"] = sameOrigin(a.forgetHandler)
	r["GET /v1/export"] = http.HandlerFunc(a.exportHandler)
	r["GET /v1/audit/{seq}/payload"] = http.HandlerFunc(a.payloadHandler)
	return r
}

// openRoutes are the read-only routes of the household's rights, and its page.
func (a *agent) openRoutes() map[string]http.Handler {
	page := household.Handler(a.pageData)
	return map[string]http.Handler{
		"GET /v1/consent": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			st, err := a.consentState()
			if err != nil {
				admin.WriteError(w, http.StatusInternalServerError, err)
				return
			}
			admin.WriteJSON(w, http.StatusOK, st)
		}),
		"GET /v1/audit": http.HandlerFunc(a.auditHandler),
		"GET /{$}":      page,
		"GET /static/":  page,
	}
}
