package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image: one static binary on an empty base (FROM scratch), with what it needs
// beside it and nothing else: CA certificates for the cloud transports (zone data is
// compiled into the binary), a passwd and group naming the non-root user, the
// container's configuration, and /data, the store's volume. Built with
// go-containerregistry — the library ko is made of — because ko takes its base image
// from a registry, and a build here must not need one.

// Image user: 65532 is the "nonroot" uid and gid of distroless and Chainguard images.
const (
	imageUID  = 65532
	imageBin  = "/usr/local/bin/hearth"
	imageConf = "/etc/hearth/hearth.yaml"
	imageData = "/data"
)

// platform is one architecture the release is built for.
type platform struct {
	GOARCH, GOARM string // Go's names
	Arch, Variant string // OCI's names
	Deb           string // Debian's architecture
}

// platforms are the hub targets and the developer's machine.
var platforms = []platform{
	{GOARCH: "amd64", Arch: "amd64", Deb: "amd64"},
	{GOARCH: "arm64", Arch: "arm64", Variant: "v8", Deb: "arm64"},
	{GOARCH: "arm", GOARM: "7", Arch: "arm", Variant: "v7", Deb: "armhf"},
}

// binName is the file name of a platform's binary in the dist directory (make cross).
func (p platform) binName() string {
	if p.GOARCH == "arm" {
		return "hearth-linux-armv7"
	}
	return "hearth-linux-" + p.GOARCH
}

// String is the platform as `podman run --platform` writes it.
func (p platform) String() string {
	s := "linux/" + p.Arch
	if p.Variant != "" && p.Arch == "arm" {
		s += "/" + p.Variant
	}
	return s
}

// imageSpec is what the image is made of.
type imageSpec struct {
	Dist     string    // directory of the binaries (binName per platform)
	Root     string    // the repository (configs/hearth.yaml)
	CAFile   string    // CA bundle copied into the image
	Version  string    // stamped in the labels
	Revision string    // the git commit, in the labels
	Created  time.Time // the images' creation time, and every file's (reproducible)
}

// labels are the OCI annotations every image carries.
func (s imageSpec) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "hearth",
		"org.opencontainers.image.description": "hearth home-hub agent: appliances over MQTT, serial and GPIO; usage tags learned on the hub; consented, pseudonymous summaries upstream",
		"org.opencontainers.image.source":      "https://github.com/hearth-iot/hearth",
		"org.opencontainers.image.version":     s.Version,
		"org.opencontainers.image.revision":    s.Revision,
		"org.opencontainers.image.created":     s.Created.UTC().Format(time.RFC3339),
	}
}

// buildIndex builds the multi-platform image index.
func buildIndex(s imageSpec) (v1.ImageIndex, error) {
	conf, err := containerConfig(s.Root)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w (install Debian's ca-certificates or pass -ca)", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.Annotations(idx, s.labels()).(v1.ImageIndex)
	for _, p := range platforms {
		img, err := buildImage(s, p, conf, ca)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: p.Arch, Variant: p.Variant}}})
	}
	return idx, nil
}

func buildImage(s imageSpec, p platform, conf, ca []byte) (v1.Image, error) {
	bin, err := os.ReadFile(filepath.Join(s.Dist, p.binName()))
	if err != nil {
		return nil, fmt.Errorf("binary: %w (make cross builds it)", err)
	}
	files := []tarEntry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/hearth/", mode: 0o755, dir: true},
		{name: "etc/hearth/hearth.yaml", mode: 0o644, body: conf},
		{name: "etc/passwd", mode: 0o644, body: fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nhearth:x:%d:%d:hearth:%s:/sbin/nologin\n", imageUID, imageUID, imageData)},
		{name: "etc/group", mode: 0o644, body: fmt.Appendf(nil, "root:x:0:\nhearth:x:%d:\n", imageUID)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: ca},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: "usr/local/bin/hearth", mode: 0o755, body: bin},
		{name: "data/", mode: 0o700, dir: true, uid: imageUID},
	}
	layerTar, err := tarOf(files, s.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: s.Created}, CreatedBy: "tools/release image", Comment: "hearth " + s.Version}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = "linux", p.Arch, p.Variant
	cf.Created = v1.Time{Time: s.Created}
	cf.Config = v1.Config{
		Entrypoint:   []string{imageBin},
		Cmd:          []string{"run", "--config", imageConf},
		User:         fmt.Sprintf("%d:%d", imageUID, imageUID),
		WorkingDir:   imageData,
		Env:          []string{"PATH=/usr/local/bin"},
		Volumes:      map[string]struct{}{imageData: {}},
		ExposedPorts: map[string]struct{}{"1883/tcp": {}, "8883/tcp": {}, "9880/tcp": {}},
		StopSignal:   "SIGTERM",
		Labels:       s.labels(),
		// Docker and podman (with --format docker) honour it; for OCI runtimes the
		// README gives the same command as a --health-cmd.
		Healthcheck: &v1.HealthConfig{Test: []string{"CMD", imageBin, "ready", "--addr", "127.0.0.1:9880"},
			Interval: 30 * time.Second, Timeout: 5 * time.Second, StartPeriod: 30 * time.Second, Retries: 3},
	}
	return mutate.ConfigFile(img, cf)
}

// tarEntry is one file or directory of the image's layer.
type tarEntry struct {
	name string
	mode int64
	dir  bool
	uid  int
	body []byte
}

// tarOf writes the entries, in name order, owned by root unless uid says otherwise,
// every one with the time mtime: the same inputs make the same bytes.
func tarOf(es []tarEntry, mtime time.Time) ([]byte, error) {
	sort.Slice(es, func(i, j int) bool { return es[i].name < es[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: mtime, Uid: e.uid, Gid: e.uid, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeLayout writes the index as an OCI image layout in dir — its index.json names the
// multi-platform index "hearth:<version>" — and the same layout as one tar file
// (an oci-archive that `podman load` and `skopeo copy oci-archive:` read).
func writeLayout(idx v1.ImageIndex, dir, archive, version string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": "hearth:" + version})); err != nil {
		return err
	}
	if archive == "" {
		return nil
	}
	return tarDir(dir, archive)
}

// tarDir writes the files under dir into the tar file out, names relative to dir.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
