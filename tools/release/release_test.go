package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

const repoRoot = "../.."

// built is the dist directory of this test run: the three binaries, built once.
var built struct {
	once sync.Once
	dir  string
	err  error
}

// dist builds hearth for every platform (as `make cross` does) into a directory
// shared by the tests of this run.
func dist(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "hearth-release-test-")
		if built.err != nil {
			return
		}
		for _, p := range platforms {
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=9.8.7-test",
				"-o", filepath.Join(built.dir, p.binName()), "./cmd/hearth")
			cmd.Dir = repoRoot
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+p.GOARCH, "GOARM="+p.GOARM)
			if out, err := cmd.CombinedOutput(); err != nil {
				built.err = fmt.Errorf("build %s: %v\n%s", p, err, out)
				return
			}
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

func spec(t *testing.T) imageSpec {
	return imageSpec{Dist: dist(t), Root: repoRoot, CAFile: "/etc/ssl/certs/ca-certificates.crt", Version: "9.8.7-test",
		Revision: "0123abcd", Created: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
}

// TestImageLayout: the OCI layout holds one index with the three platforms, each a
// non-root image of the right architecture's binary, with its entrypoint, volume,
// labels, CA certificates and configuration.
func TestImageLayout(t *testing.T) {
	s := spec(t)
	idx, err := buildIndex(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "image")
	archive := filepath.Join(t.TempDir(), "hearth-oci.tar")
	if err := writeLayout(idx, dir, archive, s.Version); err != nil {
		t.Fatal(err)
	}
	// Read back what was written, not what was built.
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || tm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "hearth:9.8.7-test" {
		t.Fatalf("index.json: %+v, want one index named hearth:9.8.7-test", tm.Manifests)
	}
	ii, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64/v8": elf.EM_AARCH64, "linux/arm/v7": elf.EM_ARM}
	if len(im.Manifests) != len(want) {
		t.Fatalf("%d platforms, want %d", len(im.Manifests), len(want))
	}
	for _, d := range im.Manifests {
		plat := d.Platform.OS + "/" + d.Platform.Architecture + "/" + d.Platform.Variant
		plat = strings.TrimSuffix(plat, "/")
		machine, ok := want[plat]
		if !ok {
			t.Fatalf("unexpected platform %s", plat)
		}
		delete(want, plat)
		img, err := ii.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if cf.Architecture != d.Platform.Architecture || cf.OS != "linux" {
			t.Errorf("%s: config says %s/%s", plat, cf.OS, cf.Architecture)
		}
		if strings.Join(c.Entrypoint, " ") != imageBin || strings.Join(c.Cmd, " ") != "run --config "+imageConf {
			t.Errorf("%s: entrypoint %q cmd %q", plat, c.Entrypoint, c.Cmd)
		}
		if c.User != "65532:65532" {
			t.Errorf("%s: user %q, want the non-root 65532:65532", plat, c.User)
		}
		if _, ok := c.Volumes["/data"]; !ok || c.WorkingDir != "/data" {
			t.Errorf("%s: volumes %v, workdir %q", plat, c.Volumes, c.WorkingDir)
		}
		for k, v := range map[string]string{"org.opencontainers.image.version": "9.8.7-test", "org.opencontainers.image.revision": "0123abcd",
			"org.opencontainers.image.source": "https://github.com/hearth-iot/hearth"} {
			if c.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q", plat, k, c.Labels[k], v)
			}
		}
		if c.Healthcheck == nil || strings.Join(c.Healthcheck.Test, " ") != "CMD "+imageBin+" ready --addr 127.0.0.1:9880" {
			t.Errorf("%s: healthcheck %+v", plat, c.Healthcheck)
		}
		files := layerFiles(t, img)
		bin, ok := files["usr/local/bin/hearth"]
		if !ok || bin.mode&0o111 == 0 {
			t.Fatalf("%s: no executable usr/local/bin/hearth", plat)
		}
		ef, err := elf.NewFile(bytes.NewReader(bin.body))
		if err != nil {
			t.Fatalf("%s: binary: %v", plat, err)
		}
		if ef.Machine != machine {
			t.Errorf("%s: binary is for %s", plat, ef.Machine)
		}
		if ca := files["etc/ssl/certs/ca-certificates.crt"]; !bytes.Contains(ca.body, []byte("BEGIN CERTIFICATE")) {
			t.Errorf("%s: no CA certificates", plat)
		}
		if d := files["data/"]; d.uid != imageUID || d.mode&0o777 != 0o700 {
			t.Errorf("%s: /data owned by %d mode %o, want %d 0700", plat, d.uid, d.mode, imageUID)
		}
		if !bytes.Contains(files["etc/passwd"].body, []byte("hearth:x:65532:65532:")) {
			t.Errorf("%s: /etc/passwd has no hearth user", plat)
		}
		if !bytes.Contains(files["etc/hearth/hearth.yaml"].body, []byte("\ndata_dir: /data")) {
			t.Errorf("%s: the configuration does not put the store in /data", plat)
		}
	}
	if fi, err := os.Stat(archive); err != nil || fi.Size() < 1<<20 {
		t.Fatalf("archive: %v", err)
	}
}

type layerFile struct {
	mode int64
	uid  int
	body []byte
}

func layerFiles(t *testing.T, img v1.Image) map[string]layerFile {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]layerFile{}
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			out[h.Name] = layerFile{mode: h.Mode, uid: h.Uid, body: b}
		}
		rc.Close()
	}
	return out
}

// TestImageReproducible: the same inputs make the same image digest.
func TestImageReproducible(t *testing.T) {
	s := spec(t)
	a, err := buildIndex(s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := buildIndex(s)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("two builds: %s and %s", da, db)
	}
	s.Version = "9.8.8-test"
	c, err := buildIndex(s)
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc == da {
		t.Fatal("another version made the same digest")
	}
}

// TestDerivedConfigs: the container's and the package's configurations pass the
// binary's own `config check` and hold the values they are made for.
func TestDerivedConfigs(t *testing.T) {
	bin := filepath.Join(dist(t), platforms[0].binName()) // amd64, this machine
	for name, mk := range map[string]func(string) ([]byte, error){"container": containerConfig, "package": packageConfig} {
		b, err := mk(repoRoot)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "config", "check", path).CombinedOutput(); err != nil {
			t.Fatalf("%s: config check: %v\n%s", name, err, out)
		}
	}
	b, _ := packageConfig(repoRoot)
	for _, want := range []string{"\ndata_dir: /var/lib/hearth", "\n  enabled: false", "\n  interval: 0s"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("package config lacks %q", want)
		}
	}
	if _, err := setKey([]byte("a:\n  b: 1\nc: 2\n"), "a.c", "3"); err == nil {
		t.Fatal("a key of another section was set")
	}
	got, err := setKey([]byte("a:\n  b: 1   # one\nc: 2\n"), "a.b", "7")
	if err != nil || string(got) != "a:\n  b: 7   # one\nc: 2\n" {
		t.Fatalf("setKey: %q, %v", got, err)
	}
}

// podmanRoot is the test's own container storage (its --root and --runroot): a
// machine's shared storage, made by a plain `podman` command with another driver,
// refused the test's vfs ("database storage graph driver \"\" does not match").
var podmanRoot string

// podman runs containers as root with vfs storage, cgroupfs and runc, which work in
// the sandboxes CI runs in, in the test's own storage (podmanRoot).
func podman(args ...string) *exec.Cmd {
	return exec.Command("podman", append([]string{"--root", filepath.Join(podmanRoot, "root"), "--runroot", filepath.Join(podmanRoot, "run"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--runtime", "runc"}, args...)...)
}

// TestContainerSmoke: the amd64 image runs read-only, without a network, with a tmpfs
// /data: it becomes ready, its simulated household's readings are stored, and SIGTERM
// stops it cleanly (exit 0, the store closed).
func TestContainerSmoke(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the container smoke test runs rootful podman: run as root (CI does)")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman missing: `make deps` installs it (%v)", err)
	}
	s := spec(t)
	idx, err := buildIndex(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	podmanRoot = filepath.Join(dir, "podman")
	t.Cleanup(func() { _ = podman("system", "reset", "--force").Run() }) // unmounts what it mounted before TempDir's removal
	archive := filepath.Join(dir, "hearth-oci.tar")
	if err := writeLayout(idx, filepath.Join(dir, "image"), archive, s.Version); err != nil {
		t.Fatal(err)
	}
	if out, err := podman("load", "-i", archive).CombinedOutput(); err != nil {
		t.Fatalf("podman load: %v\n%s", err, out)
	}
	name := fmt.Sprintf("hearth-smoke-%d", os.Getpid())
	t.Cleanup(func() { _ = podman("rm", "-f", name).Run() })
	// --ulimit: podman's defaults raise limits, which a sandbox without CAP_SYS_RESOURCE
	// refuses; these lower them instead. U: the tmpfs belongs to the image's user.
	run := podman("run", "-d", "--name", name, "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
		"--read-only", "--network", "none", "--tmpfs", "/data:rw,size=64m,U", "localhost/hearth:"+s.Version)
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	exec1 := func(args ...string) (string, error) {
		out, err := podman(append([]string{"exec", name, imageBin}, args...)...).CombinedOutput()
		return string(out), err
	}
	var last string
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := exec1("ready", "--addr", "127.0.0.1:9880")
		if err == nil && strings.TrimSpace(out) == "ready" {
			break
		}
		last = out
		if time.Now().After(deadline) {
			logs, _ := podman("logs", name).CombinedOutput()
			t.Fatalf("not ready within 90s: %s\nlogs:\n%s", last, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The pipeline works inside: the simulated household's readings are committed.
	for {
		out, err := exec1("status", "--addr", "127.0.0.1:9880", "--json")
		var st struct {
			Store struct{ Events int } `json:"store"`
		}
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Store.Events > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no readings stored within 90s: %s %v", out, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, err := podman("stop", "-t", "30", name).CombinedOutput(); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	out, err := podman("inspect", name, "--format", "{{.State.ExitCode}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := podman("logs", name).CombinedOutput()
	if code := strings.TrimSpace(string(out)); code != "0" {
		t.Fatalf("exit code %s after SIGTERM, want 0; logs:\n%s", code, logs)
	}
	if !regexp.MustCompile(`msg=stopped uptime=`).Match(logs) {
		t.Fatalf("no clean stop in the logs:\n%s", logs)
	}
	t.Logf("smoke: ready, readings stored, stopped cleanly; image %s", s.Version)
}

// TestUnitHardened: the shipped unit passes `systemd-analyze verify` and its exposure
// score is at most 2.0.
func TestUnitHardened(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatalf("systemd-analyze missing: %v", err)
	}
	unit, err := os.ReadFile(filepath.Join(repoRoot, "configs", "hearth.service"))
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that the programs exist: point the unit at the binary just built.
	dir := t.TempDir()
	bin := filepath.Join(dist(t), platforms[0].binName())
	path := filepath.Join(dir, "hearth.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/hearth"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, _ := exec.Command("systemd-analyze", "security", "--offline=yes", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for hearth.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure score in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	if score > 2.0 {
		t.Fatalf("exposure %.1f, want ≤ 2.0:\n%s", score, out)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "CapabilityBoundingSet=\n", "DevicePolicy=closed", "UMask=0077", "SystemCallFilter=@system-service"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("unit lacks %q", want)
		}
	}
	t.Logf("exposure %.1f", score)
}
