// Command release builds what hearth ships, from the binaries `make cross` puts in
// dist/: the multi-platform OCI image (linux/amd64, linux/arm64, linux/arm/v7), the
// Debian packages (amd64, arm64, armhf), a software bill of materials and checksums.
// It is its own module, so the agent's module graph carries none of its dependencies.
//
//	go -C tools/release run . image   -root ../.. [-push REF]
//	go -C tools/release run . deb     -root ../..
//	go -C tools/release run . release -root ../..     (all of it, with SHA256SUMS and sbom.json)
//
// `make image`, `make deb` and `make release` run these.
package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: release image|deb|release [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	root := fs.String("root", "../..", "the repository")
	dist := fs.String("dist", "", "directory of the binaries and of what is built (default ROOT/dist)")
	version := fs.String("version", "dev", "the version stamped in labels and packages")
	revision := fs.String("revision", "", "the git commit, in the image labels")
	ca := fs.String("ca", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied into the image")
	push := fs.String("push", "", "image: also push the index to this registry reference (e.g. ghcr.io/org/hearth:1.0)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dist == "" {
		*dist = filepath.Join(*root, "dist")
	}
	s := imageSpec{Dist: *dist, Root: *root, CAFile: *ca, Version: *version, Revision: *revision,
		Created: sourceDate(time.Unix(0, 0))}
	switch args[0] {
	case "image":
		return image(s, *push, out)
	case "deb":
		_, err := debs(s, out)
		return err
	case "release":
		return release(s, out)
	}
	return fmt.Errorf("unknown command %q: image, deb or release", args[0])
}

func image(s imageSpec, push string, out io.Writer) error {
	idx, err := buildIndex(s)
	if err != nil {
		return err
	}
	dir, archive := filepath.Join(s.Dist, "image"), filepath.Join(s.Dist, "hearth-oci.tar")
	if err := writeLayout(idx, dir, archive, s.Version); err != nil {
		return err
	}
	man, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range man.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		ls, err := img.Layers()
		if err != nil {
			return err
		}
		var size int64
		for _, l := range ls {
			n, err := l.Size()
			if err != nil {
				return err
			}
			size += n
		}
		fmt.Fprintf(out, "image linux/%s%s  %s  %.2f MB compressed\n", d.Platform.Architecture, strings.TrimSuffix("/"+d.Platform.Variant, "/"), d.Digest, float64(size)/1e6)
	}
	fmt.Fprintf(out, "OCI layout %s, archive %s\n", dir, archive)
	if push == "" {
		return nil
	}
	ref, err := name.ParseReference(push)
	if err != nil {
		return fmt.Errorf("-push %q: %w", push, err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	fmt.Fprintf(out, "pushed %s\n", ref)
	return nil
}

func debs(s imageSpec, out io.Writer) ([]string, error) {
	var paths []string
	for _, p := range platforms {
		path, err := buildDeb(s, p, s.Dist)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "deb %-6s %s  %.2f MB\n", p.Deb, filepath.Base(path), float64(fi.Size())/1e6)
		paths = append(paths, path)
	}
	return paths, nil
}

// release builds the image and the packages, then writes sbom.json (every binary's
// modules, from its build information) and SHA256SUMS over everything shipped.
func release(s imageSpec, out io.Writer) error {
	if err := image(s, "", out); err != nil {
		return err
	}
	pkgs, err := debs(s, out)
	if err != nil {
		return err
	}
	shipped := append([]string{filepath.Join(s.Dist, "hearth-oci.tar")}, pkgs...)
	var bins []string
	for _, p := range platforms {
		bins = append(bins, filepath.Join(s.Dist, p.binName()))
	}
	sbom, err := sbomOf(bins)
	if err != nil {
		return err
	}
	sbomPath := filepath.Join(s.Dist, "sbom.json")
	if err := os.WriteFile(sbomPath, sbom, 0o644); err != nil {
		return err
	}
	shipped = append(append(shipped, bins...), sbomPath)
	sums, err := checksums(shipped)
	if err != nil {
		return err
	}
	sumsPath := filepath.Join(s.Dist, "SHA256SUMS")
	if err := os.WriteFile(sumsPath, sums, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s, %s\n", sbomPath, sumsPath)
	return nil
}

// sbomModule is one module compiled into a binary.
type sbomModule struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	Sum     string `json:"sum,omitempty"`
	Replace string `json:"replace,omitempty"`
}

// sbomBinary is what `go version -m` says of one binary.
type sbomBinary struct {
	File     string            `json:"file"`
	SHA256   string            `json:"sha256"`
	Go       string            `json:"go"`
	Main     string            `json:"main"`
	Settings map[string]string `json:"settings"`
	Modules  []sbomModule      `json:"modules"`
}

func sbomOf(bins []string) ([]byte, error) {
	var all []sbomBinary
	for _, b := range bins {
		bi, err := buildinfo.ReadFile(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b, err)
		}
		sum, err := fileSHA256(b)
		if err != nil {
			return nil, err
		}
		sb := sbomBinary{File: filepath.Base(b), SHA256: sum, Go: bi.GoVersion, Main: bi.Main.Path, Settings: map[string]string{}}
		for _, s := range bi.Settings {
			sb.Settings[s.Key] = s.Value
		}
		for _, m := range bi.Deps {
			sm := sbomModule{Path: m.Path, Version: m.Version, Sum: m.Sum}
			if m.Replace != nil {
				sm.Replace = m.Replace.Path + "@" + m.Replace.Version
			}
			sb.Modules = append(sb.Modules, sm)
		}
		sort.Slice(sb.Modules, func(i, j int) bool { return sb.Modules[i].Path < sb.Modules[j].Path })
		all = append(all, sb)
	}
	return json.MarshalIndent(map[string]any{"format": "hearth-sbom/1 (go version -m)", "binaries": all}, "", "  ")
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checksums is a SHA256SUMS file (sha256sum -c reads it) of the files, by base name.
func checksums(paths []string) ([]byte, error) {
	var b strings.Builder
	for _, p := range paths {
		sum, err := fileSHA256(p)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, filepath.Base(p))
	}
	return []byte(b.String()), nil
}
