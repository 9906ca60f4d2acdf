package main

// `hearth consent` and its routes: GET /v1/consent (open), PUT /v1/consent/{category}
// (admin token). docs/privacy.md, "Consent".

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/user"
	"strings"
	"time"

	"github.com/hearth-iot/hearth/internal/admin"
	"github.com/hearth-iot/hearth/sync/privacy"
)

// consentView is one category as GET /v1/consent shows it.
type consentView struct {
	Category string    `json:"category"`
	Granted  bool      `json:"granted"`
	Source   string    `json:"source"` // "config" or "recorded"
	By       string    `json:"by,omitempty"`
	Via      string    `json:"via,omitempty"`
	At       time.Time `json:"at,omitzero"`
}

// consentState is GET /v1/consent.
type consentState struct {
	Categories []consentView `json:"categories"`
	// CrossBorderTransport: the sync transport's endpoint is outside the household's
	// region (privacy.region, privacy.endpoint_region).
	CrossBorderTransport bool `json:"cross_border_transport"`
	// SimulatedExempt: the agent's simulated household is running; its summaries
	// leave in the categories nobody recorded a decision for (they carry no
	// personal data).
	SimulatedExempt bool `json:"simulated_exempt"`
}

func (a *agent) consentState() (consentState, error) {
	recs, err := a.ledger.Records()
	if err != nil {
		return consentState{}, err
	}
	c := a.ledger.Now()
	st := consentState{CrossBorderTransport: c.CrossBorderTransport, SimulatedExempt: len(a.simIDs) > 0}
	for _, cat := range privacy.Categories {
		v := consentView{Category: cat, Granted: c.Granted(cat), Source: "config"}
		if r, ok := recs[cat]; ok {
			v.Source, v.By, v.Via, v.At = "recorded", r.By, r.Via, r.At
		}
		st.Categories = append(st.Categories, v)
	}
	return st, nil
}

// consentRequest is the body of PUT /v1/consent/{category}.
type consentRequest struct {
	Granted *bool  `json:"granted"`
	By      string `json:"by,omitempty"`
	Via     string `json:"via,omitempty"`
}

func (a *agent) consentPut(w http.ResponseWriter, r *http.Request) {
	cat := r.PathValue("category")
	if !privacy.Known(cat) {
		admin.WriteError(w, http.StatusNotFound, fmt.Errorf("consent: no category %q (one of %s)", cat, strings.Join(privacy.Categories, ", ")))
		return
	}
	var req consentRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil || req.Granted == nil {
		admin.WriteError(w, http.StatusBadRequest, fmt.Errorf(`consent: body: want {"granted": true|false} (%v)`, err))
		return
	}
	via, by, err := whoAndHow(req.Via, req.By)
	if err != nil {
		admin.WriteError(w, http.StatusBadRequest, err)
		return
	}
	ch, err := a.ledger.Set(cat, *req.Granted, by, via)
	if err != nil {
		admin.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	a.log.Info("consent changed", "component", "privacy", "category", cat, "granted", ch.Granted, "via", via, "purged", ch.Purged)
	a.dl.Notify()
	admin.WriteJSON(w, http.StatusOK, ch)
}

// sameOrigin refuses a browser's cross-site mutation: an Origin other than the
// admin listener's own (the bearer token already keeps a cross-site page out; this
// is the second lock, docs/privacy.md "The page").
func sameOrigin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || u.Host != r.Host {
				admin.WriteError(w, http.StatusForbidden, fmt.Errorf("cross-origin request from %q refused", o))
				return
			}
		}
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			admin.WriteError(w, http.StatusForbidden, errors.New("cross-site request refused"))
			return
		}
		next(w, r)
	}
}

// osUser names who runs a CLI command, for the record.
func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}

const consentUsage = `usage: hearth consent [show]                 the consent in force, and who decided it
       hearth consent grant CATEGORY|withdraw CATEGORY
categories: usage, tags, sensitive, cross_border (docs/privacy.md)
  --config FILE      the agent's configuration (admin.listen, admin.token_file)
  --addr HOST:PORT   the agent's admin address
  --token-file FILE  the agent's admin token
`

func cmdConsent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("consent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "the running agent's admin.listen address")
	cfgPath := fs.String("config", "", "configuration file")
	tokenFile := fs.String("token-file", "", "the agent's admin token file")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := splitArgs(fs, args)
	if err != nil {
		return err
	}
	c, err := privacyClient(ctx, "consent", *addr, *cfgPath, *tokenFile)
	if err != nil {
		return err
	}
	if len(pos) == 0 || pos[0] == "show" {
		var st consentState
		if _, err := c.api(http.MethodGet, "/v1/consent", nil, &st); err != nil {
			return err
		}
		if *asJSON {
			return writeIndented(stdout, st)
		}
		for _, v := range st.Categories {
			state := map[bool]string{true: "granted", false: "withdrawn"}[v.Granted]
			from := "as configured (consent." + v.Category + ")"
			if v.Source == "recorded" {
				from = fmt.Sprintf("recorded %s by %s via %s", v.At.Local().Format(time.DateTime), v.By, v.Via)
			}
			fmt.Fprintf(stdout, "%-13s %-10s %s\n", v.Category, state, from)
		}
		if st.CrossBorderTransport {
			fmt.Fprintln(stdout, "the sync transport is cross-border: every message also needs cross_border")
		}
		if st.SimulatedExempt {
			fmt.Fprintln(stdout, "the simulated household's summaries leave in the categories nobody decided (they carry no personal data)")
		}
		return nil
	}
	if len(pos) != 2 || (pos[0] != "grant" && pos[0] != "withdraw") {
		fmt.Fprint(stderr, consentUsage)
		return fmt.Errorf("%w: consent %s", errUsage, strings.Join(pos, " "))
	}
	granted := pos[0] == "grant"
	var ch privacy.Change
	if _, err := c.api(http.MethodPut, "/v1/consent/"+url.PathEscape(pos[1]),
		consentRequest{Granted: &granted, By: osUser(), Via: "cli"}, &ch); err != nil {
		return err
	}
	if *asJSON {
		return writeIndented(stdout, ch)
	}
	fmt.Fprintf(stdout, "consent %s %s (recorded %s by %s).\n", ch.Category, map[bool]string{true: "granted", false: "withdrawn"}[ch.Granted],
		ch.At.Local().Format(time.DateTime), ch.By)
	if !ch.Granted {
		fmt.Fprintf(stdout, "%d queued message(s) of it taken out of the outbox; nothing of it leaves from now on.\n", ch.Purged)
	}
	return nil
}

// privacyClient is the admin API client of consent, forget, audit and export.
func privacyClient(ctx context.Context, cmd, addr, cfgPath, tokenFile string) (*registryClient, error) {
	agentAddr, cfg, err := agentOf(addr, cfgPath)
	if err != nil {
		return nil, err
	}
	if tokenFile == "" {
		tokenFile = cfg.AdminTokenFile()
	}
	return &registryClient{ctx: ctx, addr: agentAddr, cfg: cfg, tokenFile: tokenFile, cmd: cmd}, nil
}
