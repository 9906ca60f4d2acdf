package main

// The device registry: MQTT credentials of the devices that connect to the embedded
// broker, and the Home Assistant discovery proposals the household accepted.
//
// Both are kept in the store's credentials bucket (hashes only, never a password):
//
//	device/<id>              JSON broker.Credential {device, kind, hash}
//	accepted/<name>          JSON hadiscovery.Proposal, the accepted mapping of one HA entity
//	proposal/<config topic>  JSON hadiscovery.Proposal, one learned from discovery (accepted or not),
//	                         so that it is proposed again after a restart even when its
//	                         config is not retained
//
// `hearth device` changes them through the running agent's admin API when an agent
// runs (it holds the store's file lock, and its broker sees a new device at once,
// without a restart); when no agent answers on admin.listen it opens the store
// directly. Proposals live in the running agent (learned from discovery configs),
// so `proposals` and `accept` need it; `unaccept` works either way.
//
// Every registry and proposal route needs the admin token: `hearth device` reads it
// from admin.token_file of the configuration (admin.token in data_dir by default),
// or from --token-file, and sends it as "Authorization: Bearer ...".

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hearth-iot/hearth/device"
	"github.com/hearth-iot/hearth/device/mqtt/hadiscovery"
	"github.com/hearth-iot/hearth/device/mqtt/native"
	"github.com/hearth-iot/hearth/edge/broker"
	"github.com/hearth-iot/hearth/edge/registry"
	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/internal/admin"
	"github.com/hearth-iot/hearth/internal/config"
)

// RegisteredDevice is one entry of GET /v1/registry.
type RegisteredDevice struct {
	Device  string      `json:"device"`
	Kind    device.Kind `json:"kind"`
	Via     string      `json:"via"`            // "credentials" (embedded broker) or "homeassistant" (accepted proposal)
	Name    string      `json:"name,omitempty"` // the accepted entity's unique id
	Signal  string      `json:"signal,omitempty"`
	Topic   string      `json:"topic,omitempty"`
	Session bool        `json:"ephemeral,omitempty"` // a simulated device: not persisted
}

func registryList(creds []broker.Credential, persisted map[string]bool, accepted []hadiscovery.Proposal) []RegisteredDevice {
	out := make([]RegisteredDevice, 0, len(creds)+len(accepted))
	for _, cr := range creds {
		out = append(out, RegisteredDevice{Device: cr.Device, Kind: cr.Kind, Via: "credentials", Session: !persisted[cr.Device]})
	}
	for _, p := range accepted {
		out = append(out, RegisteredDevice{Device: p.Mapping.Device, Kind: p.Mapping.Kind, Via: "homeassistant", Name: p.Mapping.Name,
			Signal: string(p.Signal), Topic: p.StateTopic})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

// addRequest is the body of POST /v1/registry.
type addRequest struct {
	Device string      `json:"device"`
	Kind   device.Kind `json:"kind"`
}

// addReply is its answer: the only time the password is shown.
type addReply struct {
	Device   string      `json:"device"`
	Kind     device.Kind `json:"kind"`
	Username string      `json:"username"`
	Password string      `json:"password"`
	Topic    string      `json:"topic"`
}

// acceptRequest is the body of POST /v1/proposals/accept: Name is the proposal's
// Mapping.Name; Device and Kind, when set, correct the guess.
type acceptRequest struct {
	Name   string      `json:"name"`
	Device string      `json:"device,omitempty"`
	Kind   device.Kind `json:"kind,omitempty"`
}

// proposalView is one entry of GET /v1/proposals.
type proposalView struct {
	hadiscovery.Proposal
	Accepted bool `json:"accepted"`
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body: %w", err)
	}
	return nil
}

// registryRoutes are the admin API's registry and discovery routes.
func (a *agent) registryRoutes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /v1/registry": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			creds, accepted, err := registry.Load(a.st)
			if err != nil {
				admin.WriteError(w, http.StatusInternalServerError, err)
				return
			}
			persisted := map[string]bool{}
			for _, cr := range creds {
				persisted[cr.Device] = true
			}
			admin.WriteJSON(w, http.StatusOK, registryList(a.creds.List(), persisted, accepted))
		}),
		"POST /v1/registry": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var req addRequest
			if err := decodeBody(r, &req); err != nil {
				admin.WriteError(w, http.StatusBadRequest, err)
				return
			}
			if _, ok := a.creds.Kind(req.Device); ok {
				admin.WriteError(w, http.StatusConflict, fmt.Errorf("device %q: %w", req.Device, registry.ErrExists))
				return
			}
			cr, pw, err := registry.Add(a.st, req.Device, req.Kind)
			switch {
			case errors.Is(err, registry.ErrExists):
				admin.WriteError(w, http.StatusConflict, err)
				return
			case err != nil:
				admin.WriteError(w, http.StatusBadRequest, err)
				return
			}
			a.creds.Set(cr) // the running broker accepts it from now on
			a.log.Info("device added", "component", "registry", "device", cr.Device, "kind", cr.Kind)
			admin.WriteJSON(w, http.StatusCreated, addReply{Device: cr.Device, Kind: cr.Kind, Username: cr.Device, Password: pw,
				Topic: native.Topic(cr.Device)})
		}),
		"DELETE /v1/registry/{device}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			dev := r.PathValue("device")
			err := registry.Remove(a.st, dev)
			switch {
			case errors.Is(err, registry.ErrNotFound):
				admin.WriteError(w, http.StatusNotFound, err)
				return
			case err != nil:
				admin.WriteError(w, http.StatusInternalServerError, err)
				return
			}
			a.creds.Remove(dev) // new connections are refused; a connected client keeps its session until it disconnects
			a.log.Info("device removed", "component", "registry", "device", dev)
			w.WriteHeader(http.StatusNoContent)
		}),
		"GET /v1/proposals": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if a.mq == nil || a.mq.disc == nil {
				admin.WriteError(w, http.StatusNotFound, errNoDiscovery)
				return
			}
			a.mq.mu.Lock()
			out := []proposalView{}
			for _, p := range a.mq.disc.Proposals() {
				_, acc := a.mq.accepted[p.Mapping.Name]
				out = append(out, proposalView{Proposal: p, Accepted: acc})
			}
			a.mq.mu.Unlock()
			admin.WriteJSON(w, http.StatusOK, out)
		}),
		"DELETE /v1/proposals/accepted/{name}": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := a.unaccept(r.PathValue("name"))
			switch {
			case errors.Is(err, registry.ErrNotFound):
				admin.WriteError(w, http.StatusNotFound, err)
				return
			case err != nil:
				admin.WriteError(w, http.StatusInternalServerError, err)
				return
			}
			admin.WriteJSON(w, http.StatusOK, p)
		}),
		"POST /v1/proposals/accept": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if a.mq == nil || a.mq.disc == nil {
				admin.WriteError(w, http.StatusNotFound, errNoDiscovery)
				return
			}
			var req acceptRequest
			if err := decodeBody(r, &req); err != nil {
				admin.WriteError(w, http.StatusBadRequest, err)
				return
			}
			p, err := a.accept(req)
			if err != nil {
				code := http.StatusBadRequest
				if errors.Is(err, registry.ErrNotFound) {
					code = http.StatusNotFound
				}
				admin.WriteError(w, code, err)
				return
			}
			admin.WriteJSON(w, http.StatusOK, p)
		}),
	}
}

// accept persists a proposal (with the request's corrections) and makes the hadiscovery.State read it.
func (a *agent) accept(req acceptRequest) (hadiscovery.Proposal, error) {
	var p hadiscovery.Proposal
	found := false
	for _, x := range a.mq.disc.Proposals() {
		if x.Mapping.Name == req.Name || x.ConfigTopic == req.Name {
			p, found = x, true
			break
		}
	}
	if !found {
		return p, fmt.Errorf("proposal %q: %w (see `hearth device proposals`)", req.Name, registry.ErrNotFound)
	}
	a.mq.mu.Lock()
	defer a.mq.mu.Unlock()
	// A device has one kind: the one it already has wins over the proposal's guess,
	// and an explicit --kind that contradicts it is refused (readings would flip
	// the device's kind back and forth).
	p, err := registry.Accepting(p, req.Name, req.Device, req.Kind, func(dev string) (device.Kind, string, bool) {
		return a.kindOf(dev, p.Mapping.Name)
	})
	if err != nil {
		return p, err
	}
	list := []hadiscovery.Proposal{p}
	prev := make([]hadiscovery.Proposal, 0, len(a.mq.accepted)) // what the hadiscovery.State reads now, for a rollback
	for name, x := range a.mq.accepted {
		prev = append(prev, x)
		if name != p.Mapping.Name {
			list = append(list, x)
		}
	}
	if err := a.mq.ha.Replace(list); err != nil { // checks it before anything is persisted
		return p, err
	}
	// On a failure, the hadiscovery.State goes back to exactly what it read before: with an earlier
	// acceptance of the same entity still in it (dropping it, as list[1:] did, lost
	// that entity's readings until a restart).
	if a.mq.onAccept != nil { // subscribes to its state topic on the external broker (mqtt.go)
		if err := a.mq.onAccept(p); err != nil {
			_ = a.mq.ha.Replace(prev)
			return p, err
		}
	}
	if err := registry.KeepAccepted(a.st, &p); err != nil {
		_ = a.mq.ha.Replace(prev)
		return p, err
	}
	a.mq.accepted[p.Mapping.Name] = p
	a.log.Info("discovery proposal accepted", "component", "registry", "name", p.Mapping.Name, "device", p.Mapping.Device,
		"kind", p.Mapping.Kind, "state_topic", p.StateTopic)
	return p, nil
}

// kindOf returns the kind device dev already has, and where it comes from: a
// configured mapping, a registered credential, or another accepted entity (not the
// one named except, which may be accepted again to correct its kind). The kind of
// its stored readings does not count: a device may have been mapped wrongly before.
// a.mq.mu is held.
func (a *agent) kindOf(dev, except string) (device.Kind, string, bool) {
	for i, m := range a.cfg.MQTT.Mappings {
		if m.Device == dev {
			return m.Kind, fmt.Sprintf("mqtt.mappings[%d]: %s %q", i, m.Source, m.Name), true
		}
	}
	if k, ok := a.creds.Kind(dev); ok {
		return k, "its registration, `hearth device list`", true
	}
	for _, name := range slices.Sorted(maps.Keys(a.mq.accepted)) {
		if x := a.mq.accepted[name]; name != except && x.Mapping.Device == dev {
			return x.Mapping.Kind, fmt.Sprintf("accepted entity %q", name), true
		}
	}
	return "", "", false
}

// unaccept forgets an accepted proposal: the hadiscovery.State stops reading it, its state topic
// is unsubscribed from when nothing else reads it, and it is deleted from the store.
// The proposal itself stays listed by `hearth device proposals`.
func (a *agent) unaccept(name string) (hadiscovery.Proposal, error) {
	if a.mq == nil {
		return hadiscovery.Proposal{}, fmt.Errorf("accepted entity %q: %w", name, registry.ErrNotFound)
	}
	a.mq.mu.Lock()
	defer a.mq.mu.Unlock()
	p, ok := a.mq.accepted[name]
	if !ok {
		return p, fmt.Errorf("accepted entity %q: %w (see `hearth device list`)", name, registry.ErrNotFound)
	}
	list := make([]hadiscovery.Proposal, 0, len(a.mq.accepted))
	for n, x := range a.mq.accepted {
		if n != name {
			list = append(list, x)
		}
	}
	if _, err := registry.Unaccept(a.st, name); err != nil {
		return p, err
	}
	if err := a.mq.ha.Replace(list); err != nil {
		return p, err // cannot happen: every entry was accepted by Replace before
	}
	delete(a.mq.accepted, name)
	if a.mq.onUnaccept != nil {
		a.mq.onUnaccept(p)
	}
	a.log.Info("discovery proposal unaccepted", "component", "registry", "name", name, "device", p.Mapping.Device,
		"state_topic", p.StateTopic)
	return p, nil
}

// ---- the command line ----

const deviceUsage = `usage:
  hearth device add NAME --kind KIND     register a device; prints its MQTT password once
  hearth device list [--json]            registered devices
  hearth device remove NAME              delete a device's credentials
  hearth device proposals [--json]       mappings proposed by Home Assistant discovery (running agent)
  hearth device accept NAME [--device ID] [--kind KIND]
                                         accept a proposal (running agent); a device that
                                         already has a kind keeps it (another --kind is refused)
  hearth device unaccept NAME            forget an accepted proposal
flags (every subcommand):
  --addr HOST:PORT   the running agent's admin.listen (default: from --config, else 127.0.0.1:9880)
  --config FILE      configuration (data_dir, admin.listen, admin.token_file); data_dir is used when no agent runs
  --token-file FILE  the agent's admin token (default: admin.token_file from --config, else ./data/admin.token);
                     readable by the user hearth runs as and by root
`

// splitArgs parses flags wherever they appear among positional arguments.
func splitArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func cmdDevice(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, deviceUsage)
		return fmt.Errorf("%w: device needs a subcommand", errUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("device "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "the running agent's admin.listen address")
	cfgPath := fs.String("config", "", "configuration file")
	tokenFile := fs.String("token-file", "", "the agent's admin token file (default: admin.token_file of the configuration)")
	kind := fs.String("kind", "", "appliance kind (add, accept)")
	devID := fs.String("device", "", "hearth device id (accept)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := splitArgs(fs, args[1:])
	if err != nil {
		return err
	}
	agent, cfg, err := agentOf(*addr, *cfgPath)
	if err != nil {
		return err
	}
	*addr = agent
	if *tokenFile == "" {
		*tokenFile = cfg.AdminTokenFile()
	}
	c := &registryClient{ctx: ctx, addr: *addr, cfg: cfg, tokenFile: *tokenFile, cmd: "device " + sub}
	need := func(n int, what string) error {
		if len(pos) != n {
			return fmt.Errorf("%w: device %s takes %s, got %q\n%s", errUsage, sub, what, pos, deviceUsage)
		}
		return nil
	}
	switch sub {
	case "add":
		if err := need(1, "one NAME"); err != nil {
			return err
		}
		if *kind == "" {
			return fmt.Errorf("%w: device add %s: --kind is required (one of %s)", errUsage, pos[0], kindList())
		}
		rep, via, err := c.add(pos[0], device.Kind(*kind))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "device %s (%s) registered (%s).\n", rep.Device, rep.Kind, via)
		fmt.Fprintf(stdout, "MQTT username: %s\nMQTT password: %s\nPublish to:    %s\n", rep.Username, rep.Password, rep.Topic)
		fmt.Fprintln(stdout, "The password is shown only now; only its hash is kept. Lost it? remove the device and add it again.")
		return nil
	case "remove":
		if err := need(1, "one NAME"); err != nil {
			return err
		}
		via, err := c.remove(pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "device %s removed (%s).\n", pos[0], via)
		return nil
	case "list":
		if err := need(0, "no arguments"); err != nil {
			return err
		}
		list, err := c.list()
		if err != nil {
			return err
		}
		if *asJSON {
			return writeIndented(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEVICE\tKIND\tVIA\tDETAIL")
		for _, d := range list {
			detail := ""
			if d.Via == "homeassistant" {
				detail = d.Name + " " + d.Topic
			} else if d.Session {
				detail = "simulated (not persisted)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Device, d.Kind, d.Via, detail)
		}
		return tw.Flush()
	case "proposals":
		if err := need(0, "no arguments"); err != nil {
			return err
		}
		var ps []proposalView
		if _, err := c.api(http.MethodGet, "/v1/proposals", nil, &ps); err != nil {
			return err
		}
		if *asJSON {
			return writeIndented(stdout, ps)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tDEVICE\tKIND\tSIGNAL\tSTATE TOPIC\tACCEPTED\tWHY")
		for _, p := range ps {
			why := p.Reason
			if p.Problem != "" {
				why = "cannot read: " + p.Problem
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\n", p.Mapping.Name, p.Mapping.Device, p.Mapping.Kind, p.Signal, p.StateTopic, p.Accepted, why)
		}
		return tw.Flush()
	case "accept":
		if err := need(1, "one proposal NAME"); err != nil {
			return err
		}
		var p hadiscovery.Proposal
		if _, err := c.api(http.MethodPost, "/v1/proposals/accept", acceptRequest{Name: pos[0], Device: *devID, Kind: device.Kind(*kind)}, &p); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "accepted %s: device %s (%s), signal %s from %s\n", p.Mapping.Name, p.Mapping.Device, p.Mapping.Kind, p.Signal, p.StateTopic)
		return nil
	case "unaccept":
		if err := need(1, "one accepted NAME"); err != nil {
			return err
		}
		p, via, err := c.unaccept(pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "unaccepted %s (device %s, signal %s from %s) %s.\n", p.Mapping.Name, p.Mapping.Device, p.Signal, p.StateTopic, via)
		return nil
	}
	fmt.Fprint(stderr, deviceUsage)
	return fmt.Errorf("%w: unknown device subcommand %q", errUsage, sub)
}

func kindList() string {
	ks := make([]string, 0, len(device.Kinds()))
	for _, k := range device.Kinds() {
		ks = append(ks, string(k))
	}
	return strings.Join(ks, ", ")
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// registryClient does registry work through the agent's API, or on the store when
// no agent runs.
type registryClient struct {
	ctx       context.Context
	addr      string
	cfg       config.Config
	tokenFile string // the agent's admin.token_file
	cmd       string // "device add", for errors
}

// token reads the admin token. A missing file yields "" (no agent may ever have
// started: the request then fails only if an agent answers); an unreadable one an
// error that says what to do.
func (c *registryClient) token() (string, error) {
	tok, err := admin.ReadToken(c.tokenFile)
	switch {
	case err == nil:
		return tok, nil
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case errors.Is(err, fs.ErrPermission):
		return "", fmt.Errorf("%s: admin token %s: permission denied — run as the user hearth runs as, or as root", c.cmd, c.tokenFile)
	}
	return "", fmt.Errorf("%s: admin token: %w", c.cmd, err)
}

// errNoAgent means nothing answers on the admin address.
var errNoAgent = errors.New("no agent answers")

// api calls the agent; errNoAgent when nothing listens on addr.
func (c *registryClient) api(method, path string, body, out any) (int, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.addr+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	// A token that cannot be read is reported only if an agent answers: with none,
	// the command works on the store (whose directory the same user must reach).
	tok, tokErr := c.token()
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return 0, fmt.Errorf("%w on %s (is `hearth run` running? admin.listen sets the address): %v", errNoAgent, c.addr, err)
		}
		return 0, fmt.Errorf("cannot reach hearth at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		switch {
		case tokErr != nil:
			return resp.StatusCode, tokErr
		case tok == "":
			return resp.StatusCode, fmt.Errorf("%s: the agent at %s needs its admin token, and %s does not exist: pass --config with the agent's configuration, or --token-file",
				c.cmd, c.addr, c.tokenFile)
		}
		return resp.StatusCode, fmt.Errorf("%s: the agent at %s refused the admin token in %s (is it this agent's admin.token_file? pass --config with its configuration, or --token-file)",
			c.cmd, c.addr, c.tokenFile)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return resp.StatusCode, errors.New(e.Error)
		}
		return resp.StatusCode, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if raw, ok := out.(*[]byte); ok { // the body as it is
		*raw = b
		return resp.StatusCode, nil
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// openStore opens the store for a command when no agent runs.
func (c *registryClient) openStore() (*store.Store, error) {
	if _, err := prepareDataDir(c.cfg.DataDir); err != nil {
		return nil, err
	}
	path := filepath.Join(c.cfg.DataDir, c.cfg.Store.File)
	st, err := store.Open(path, &store.Options{})
	if err != nil {
		return nil, fmt.Errorf("no agent on %s, and the store cannot be opened: %w", c.addr, err)
	}
	return st, nil
}

func (c *registryClient) add(dev string, kind device.Kind) (addReply, string, error) {
	var rep addReply
	_, err := c.api(http.MethodPost, "/v1/registry", addRequest{Device: dev, Kind: kind}, &rep)
	if err == nil {
		return rep, "through the running agent at " + c.addr + "; its broker accepts it now", nil
	}
	if !errors.Is(err, errNoAgent) {
		return rep, "", err
	}
	st, err := c.openStore()
	if err != nil {
		return rep, "", err
	}
	defer st.Close()
	cr, pw, err := registry.Add(st, dev, kind)
	if err != nil {
		return rep, "", err
	}
	return addReply{Device: cr.Device, Kind: cr.Kind, Username: cr.Device, Password: pw, Topic: native.Topic(cr.Device)},
		"in " + st.Path() + "; the agent loads it when it starts", nil
}

func (c *registryClient) remove(dev string) (string, error) {
	_, err := c.api(http.MethodDelete, "/v1/registry/"+pathSegment(dev), nil, nil)
	if err == nil {
		return "through the running agent", nil
	}
	if !errors.Is(err, errNoAgent) {
		return "", err
	}
	st, err := c.openStore()
	if err != nil {
		return "", err
	}
	defer st.Close()
	return "in " + st.Path(), registry.Remove(st, dev)
}

// pathSegment escapes s as one URL path segment. url.PathEscape leaves "." and ".."
// as they are, and an HTTP path cleans them away (/v1/registry/.. is /v1/): their dots
// are escaped too. Device ids that device.ValidID accepts need neither, but a store
// may hold an id registered before it refused them, and it must be removable.
func pathSegment(s string) string {
	if s == "." || s == ".." {
		return strings.ReplaceAll(s, ".", "%2E")
	}
	return url.PathEscape(s)
}

func (c *registryClient) list() ([]RegisteredDevice, error) {
	var list []RegisteredDevice
	_, err := c.api(http.MethodGet, "/v1/registry", nil, &list)
	if err == nil {
		return list, nil
	}
	if !errors.Is(err, errNoAgent) {
		return nil, err
	}
	st, err := c.openStore()
	if err != nil {
		return nil, err
	}
	defer st.Close()
	creds, accepted, err := registry.Load(st)
	if err != nil {
		return nil, err
	}
	persisted := map[string]bool{}
	for _, cr := range creds {
		persisted[cr.Device] = true
	}
	return registryList(creds, persisted, accepted), nil
}

func (c *registryClient) unaccept(name string) (hadiscovery.Proposal, string, error) {
	var p hadiscovery.Proposal
	_, err := c.api(http.MethodDelete, "/v1/proposals/accepted/"+url.PathEscape(name), nil, &p)
	if err == nil {
		return p, "through the running agent", nil
	}
	if !errors.Is(err, errNoAgent) {
		return p, "", err
	}
	st, err := c.openStore()
	if err != nil {
		return p, "", err
	}
	defer st.Close()
	p, err = registry.Unaccept(st, name)
	return p, "in " + st.Path() + "; the agent reads it no more when it starts", err
}
