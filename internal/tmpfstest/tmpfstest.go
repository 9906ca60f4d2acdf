// Package tmpfstest runs a command on a filesystem of a given size that a test can
// really fill: a tmpfs mounted in a user and mount namespace of the command's own
// (unshare -rm, util-linux), so no privilege is needed and nothing is mounted
// outside the command. The command reports by printing "key value" lines.
package tmpfstest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Available returns nil when this machine lets a process make a user and mount
// namespace (unshare -rm), and why not otherwise.
func Available() error {
	if err := exec.Command("unshare", "-rm", "true").Run(); err != nil {
		return fmt.Errorf("cannot make a mount namespace to mount a tmpfs (unshare -rm: %w)", err)
	}
	return nil
}

// Run mounts a tmpfs of size (mount's size option: "8m") at dir, runs args there
// with env, and returns the lines it printed as key → value (the first word of a
// line, and the rest). A failure of the command fails the test.
func Run(t testing.TB, dir, size string, args, env []string) map[string]string {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = quote(a)
	}
	script := fmt.Sprintf("mount -t tmpfs -o size=%s tmpfs %s && exec %s", size, quote(dir), strings.Join(quoted, " "))
	cmd := exec.Command("unshare", "-rm", "sh", "-c", script)
	cmd.Env, cmd.Stderr = env, os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tmpfstest: %v\n%s", err, out)
	}
	res := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		res[k] = v
	}
	return res
}

// quote quotes s for sh.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
