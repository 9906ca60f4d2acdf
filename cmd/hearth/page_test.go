package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hearth-iot/hearth/internal/config"
)

// screenshotDir is where the page's test writes its screenshots: HEARTH_SCREENSHOTS,
// else a temporary folder of the test.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("HEARTH_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// checkPNG checks that b is a PNG of at least w×h pixels that is not of one colour,
// and writes it to dir/name.
func checkPNG(t *testing.T, b []byte, dir, name string, w, h int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	r := img.Bounds()
	if r.Dx() < w || r.Dy() < h {
		t.Errorf("screenshot %s is %dx%d, want at least %dx%d", name, r.Dx(), r.Dy(), w, h)
	}
	colours := map[[4]uint32]bool{}
	for y := r.Min.Y; y < r.Max.Y && len(colours) < 8; y += 7 {
		for x := r.Min.X; x < r.Max.X; x += 7 {
			c0, c1, c2, c3 := img.At(x, y).RGBA()
			colours[[4]uint32{c0, c1, c2, c3}] = true
		}
	}
	if len(colours) < 8 {
		t.Errorf("screenshot %s has %d colours: blank", name, len(colours))
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
		t.Fatalf("screenshot %s: %v", p, err)
	}
	t.Logf("screenshot %s: %dx%d, %d bytes", p, r.Dx(), r.Dy(), len(b))
}

// The household's page in Debian's chromium, headless, on a phone-sized screen: it
// loads with the simulated household's tags and charts (7×24 cells per appliance,
// one point per day per tag, one bar pair per day of traffic); a consent switch is
// refused without the admin token and recorded with it; erasing an appliance through
// the page's confirmation removes it from the page. Screenshots are written to
// HEARTH_SCREENSHOTS (or a temporary folder) and checked.
func TestHouseholdPageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run make deps (Debian's chromium package)")
	}
	cfg := testConfig(t)
	cfg.Sim.Enabled = true
	cfg.Sim.History = config.Duration(21 * 24 * time.Hour)
	cfg.Sim.Speed = 200000
	cur, gen, _ := startRestartable(t, cfg, testLogger(t))
	a := cur()
	admin := "http://" + a.adminLn.Addr().String()
	waitFor(t, "tags learned from the simulated household", 90*time.Second, func() bool {
		return len(cur().eng.Tags()) >= 2 && len(cur().st.Devices()) == len(cur().hh.Appliances())
	})
	token, err := os.ReadFile(cfg.AdminTokenFile())
	if err != nil {
		t.Fatal(err)
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox)...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute)
	defer cancelT()
	count := func(sel string) int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	// A phone's screen: 412×915 CSS pixels, touch.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(412, 915, chromedp.EmulateMobile),
		chromedp.Navigate(admin+"/"), chromedp.WaitVisible(chromedp.CSS("#tags"))); err != nil {
		t.Fatalf("load the page: %v", err)
	}
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); err != nil || w > 412 {
		t.Errorf("the page is %d pixels wide on a 412-pixel phone screen (%v): it scrolls sideways", w, err)
	}
	shots := screenshotDir(t)
	tags, devices := count("li.tag"), count("div.device")
	if tags < 2 || devices < 4 {
		t.Fatalf("the page shows %d tags and %d appliances, want the simulated household's (>= 2, >= 4)", tags, devices)
	}
	if n := count("svg.heatmap rect.cell"); n != devices*7*24 {
		t.Errorf("%d heatmap cells for %d appliances, want %d", n, devices, devices*7*24)
	}
	if n := count("svg.scores polyline.series"); n != tags {
		t.Errorf("%d score series for %d tags", n, tags)
	}
	points, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`Array.from(document.querySelectorAll("svg.scores polyline.series")).map(p => p.points.numberOfItems)`))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range points {
		if p != pageDays {
			t.Errorf("score series %d has %d points, want one a day for %d days", i, p, pageDays)
		}
	}
	if s, r := count("svg.traffic rect.sent"), count("svg.traffic rect.raw"); s != pageTraffic || r != pageTraffic {
		t.Errorf("traffic chart: %d sent and %d raw bars, want %d of each", s, r, pageTraffic)
	}
	if n := count("ol.audit li"); n == 0 {
		t.Error("the page shows no audit entry (the file transport delivered the simulated household's summaries)")
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, shot, shots, "page-phone.png", 400, 915)

	// A consent switch without the token: refused, and the switch flips back.
	recorded := func() (granted, ok bool, via string) {
		var st consentState
		getJSON(t, admin+"/v1/consent", &st)
		for _, c := range st.Categories {
			if c.Category == "usage" {
				return c.Granted, c.Source == "recorded", c.Via
			}
		}
		return false, false, ""
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`input.consent[data-category="usage"]`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal on the page", 20*time.Second, func() bool {
		msg, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#message")))
		return strings.Contains(msg, "Refused")
	})
	if checked, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('input.consent[data-category="usage"]').checked`)); checked {
		t.Error("the refused switch stays on")
	}
	if _, ok, _ := recorded(); ok {
		t.Fatal("a consent change without the token was recorded")
	}
	// With the token (kept in the tab's session, never in a URL): recorded via the page.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#token"), strings.TrimSpace(string(token))),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#logged-in")),
		chromedp.Click(chromedp.CSS(`input.consent[data-category="usage"]`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the switch recorded", 20*time.Second, func() bool { g, ok, via := recorded(); return g && ok && via == "page" })
	// The page reloads itself after a change: wait for the reloaded page (it says who
	// decided), or the reload could land in the middle of the erasure below.
	waitFor(t, "the page reloaded with the decision", 20*time.Second, func() bool {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
			`(document.querySelector('input.consent[data-category="usage"]')?.closest("li")?.textContent || "").includes("by household page")`))
		return err == nil && ok
	})
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.Contains(loc, strings.TrimSpace(string(token))) {
		t.Error("the token is in the page's URL")
	}
	// The same change from another site, token and all: refused.
	req, _ := http.NewRequest(http.MethodPut, admin+"/v1/consent/usage", strings.NewReader(`{"granted":false}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Origin", "http://evil.example")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-origin change: %v %v, want 403", resp, err)
	}

	// Erase an appliance through the confirmation: gone from the page after the
	// agent's restart in place.
	const victim = "sim-washer"
	devices = count("div.device") // the simulation may have brought one more since
	if count(fmt.Sprintf(`div.device[data-device=%q]`, victim)) != 1 {
		t.Fatalf("%s is not on the page", victim)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#tags")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`button.erase[data-device=%q]`, victim))),
		chromedp.SendKeys(chromedp.CSS("#confirm-input"), victim)); err != nil {
		t.Fatal(err)
	}
	shot, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, shot, shots, "erase-confirm.png", 400, 700)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#confirm-ok"))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // what the page and the agent say, when this fails
		if !t.Failed() {
			return
		}
		msg, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("#message")||{}).textContent + " | " + location.href + " | devices: " + Array.from(document.querySelectorAll("div.device")).map(d => d.dataset.device).join(",")`))
		t.Logf("page: %s", msg)
		t.Logf("erasure audit: %s", getText(t, admin+"/v1/audit?kind=erasure"))
	})
	waitFor(t, "the agent's restart", 60*time.Second, func() bool { return gen() == 2 })
	// The reloaded page fills #devices after it appears: wait for the victim gone
	// and the others there (a count read at once found 1 of 4, the rest still coming).
	var left int
	waitFor(t, "the appliance gone from the page, the others on it", 60*time.Second, func() bool {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(
			`document.querySelector("#devices") ? document.querySelectorAll('div.device[data-device=%q]').length : -1`, victim)))
		left = count("div.device")
		return err == nil && n == 0 && left == devices-1
	})
	t.Logf("%d appliances on the page after the erasure (%d before)", left, devices)
	for _, d := range cur().st.Devices() {
		if d.ID == victim {
			t.Errorf("%s is still in the store: %+v", victim, d)
		}
	}
	var l auditList
	getJSON(t, admin+"/v1/audit?kind=erasure", &l)
	if len(l.Entries) != 1 || l.Entries[0].Detail["via"] != "page" {
		t.Errorf("erasure audit: %+v", l.Entries)
	}
	shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, shot, shots, "page-after-erase.png", 400, 915)
}
