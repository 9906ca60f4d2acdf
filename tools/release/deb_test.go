package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{"v1.2.3": "1.2.3", "1.2.3-rc1": "1.2.3~rc1", "0fefd75": "0.0~git0fefd75",
		"0fefd75-dirty": "0.0~git0fefd75.dirty", "dev": "0.0~gitdev"} {
		if got := debVersion(in); got != want {
			t.Errorf("debVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDebPackage: the amd64 package holds the binary, the unit, the configuration as a
// conffile and /var/lib/hearth; installed with dpkg on this machine it makes the
// system user and a configuration `hearth config check` passes; purge removes all of
// it again.
func TestDebPackage(t *testing.T) {
	s := spec(t)
	out := t.TempDir()
	var amd64 platform
	for _, p := range platforms {
		if p.Deb == "amd64" {
			amd64 = p
		}
	}
	path, err := buildDeb(s, amd64, out)
	if err != nil {
		t.Fatal(err)
	}
	info, err := exec.Command("dpkg-deb", "--info", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --info: %v\n%s", err, info)
	}
	for _, want := range []string{"Package: hearth", "Version: 9.8.7~test", "Architecture: amd64", "Depends: adduser", "postinst", "postrm", "conffiles"} {
		if !strings.Contains(string(info), want) {
			t.Errorf("control lacks %q:\n%s", want, info)
		}
	}
	list, err := exec.Command("dpkg-deb", "--contents", path).CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-rwxr-xr-x root/root", "./usr/bin/hearth", "./lib/systemd/system/hearth.service", "./etc/hearth/hearth.yaml", "./var/lib/hearth/"} {
		if !strings.Contains(string(list), want) {
			t.Errorf("contents lack %q:\n%s", want, list)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("installing the package needs root (CI runs as root)")
	}
	if exec.Command("dpkg", "-s", "hearth").Run() == nil {
		t.Fatal("a hearth package is installed on this machine; this test installs and purges its own: remove it first")
	}
	if exec.Command("getent", "passwd", "hearth").Run() == nil {
		t.Fatal("a user hearth exists on this machine; this test makes and removes its own: remove it first")
	}
	t.Cleanup(func() { _ = exec.Command("dpkg", "--purge", "hearth").Run() })
	if b, err := exec.Command("dpkg", "-i", path).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, b)
	}
	if b, err := exec.Command("/usr/bin/hearth", "config", "check", "/etc/hearth/hearth.yaml").CombinedOutput(); err != nil {
		t.Fatalf("hearth config check /etc/hearth/hearth.yaml: %v\n%s", err, b)
	}
	if b, err := exec.Command("getent", "passwd", "hearth").Output(); err != nil || !strings.Contains(string(b), ":/var/lib/hearth:") {
		t.Fatalf("no system user hearth: %q %v", b, err)
	}
	if b, err := exec.Command("stat", "-c", "%U:%G %a", "/var/lib/hearth").Output(); err != nil || strings.TrimSpace(string(b)) != "hearth:hearth 750" {
		t.Fatalf("/var/lib/hearth: %q %v", b, err)
	}
	if b, err := exec.Command("systemd-analyze", "verify", "--man=no", "/lib/systemd/system/hearth.service").CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze verify of the installed unit: %v\n%s", err, b)
	}
	if b, err := exec.Command("dpkg", "--purge", "hearth").CombinedOutput(); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, b)
	}
	for _, gone := range []string{"/usr/bin/hearth", "/lib/systemd/system/hearth.service", "/etc/hearth", "/var/lib/hearth"} {
		if _, err := os.Lstat(gone); !os.IsNotExist(err) {
			t.Errorf("%s still there after purge (%v)", gone, err)
		}
	}
	if exec.Command("getent", "passwd", "hearth").Run() == nil {
		t.Error("user hearth still there after purge")
	}
	if exec.Command("getent", "group", "hearth").Run() == nil {
		t.Error("group hearth still there after purge")
	}
}
