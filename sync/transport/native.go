package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"github.com/hearth-iot/hearth/edge/store"
	"github.com/hearth-iot/hearth/sync/message"
	"github.com/hearth-iot/hearth/sync/transport/syncpb"
)

// ProtoMessage maps a message to its protobuf form (hearth_sync.proto).
func ProtoMessage(m store.Message) (*syncpb.Message, error) {
	v, err := message.Decode(m)
	if err != nil {
		return nil, err
	}
	pm := &syncpb.Message{Id: m.ID, AtMs: m.At.UnixMilli()}
	switch x := v.(type) {
	case *message.DeviceDay:
		pm.RulesVersion = x.Rules
		d := &syncpb.DeviceDay{Device: x.Device, Kind: string(x.Kind), Date: x.Date, Signals: map[string]*syncpb.Signal{}}
		for sig, s := range x.Signals {
			ps := &syncpb.Signal{N: s.N, Min: s.Min, Max: s.Max, Mean: s.Mean, Sum: s.Sum, Sessions: s.Sessions, OnS: s.OnSeconds,
				LongestS: s.LongestSec, Over_60S: s.Over60s, Cycles: s.Cycles, EnergyWh: s.EnergyWh, Stocked: s.Stocked, Taken: s.Taken}
			if s.ByPart != nil {
				ps.ByPart = s.ByPart[:]
			}
			d.Signals[string(sig)] = ps
		}
		pm.Body = &syncpb.Message_DeviceDay{DeviceDay: d}
	case *message.TagChange:
		pm.RulesVersion = x.Rules
		pm.Body = &syncpb.Message_Tag{Tag: &syncpb.TagChange{Tag: x.Tag, Score: x.Score, Confidence: x.Confidence, Active: x.Active,
			Status: x.Status, Reason: x.Reason, Evidence: x.Evidence}}
	case *message.Profile:
		pm.RulesVersion = x.Rules
		pm.Body = &syncpb.Message_Profile{Profile: &syncpb.Profile{ActiveTags: x.ActiveTags, Scores: x.Scores}}
	case *message.Erasure:
		pm.RulesVersion = "-" // an erasure request depends on no rule set
		pm.Body = &syncpb.Message_Erasure{Erasure: &syncpb.Erasure{Scope: x.Scope, Household: x.Household, Device: x.Device,
			RequestedAtMs: x.RequestedAt.UnixMilli()}}
	case *message.Health:
		pm.RulesVersion = x.Rules
		h := x.Store
		pm.Body = &syncpb.Message_Health{Health: &syncpb.Health{Date: x.Date, SinceMs: h.Since.UnixMilli(), Committed: h.Committed,
			Duplicates: h.Duplicates, Evicted: h.Evicted, Refused: h.Refused, Corruptions: h.Corruptions, Compactions: h.Compactions,
			FileBytes: h.FileBytes, QuotaBytes: h.QuotaBytes, IntakeStopped: h.IntakeStopped}}
	}
	return pm, nil
}

// protoCodec encodes batches as zstd-compressed protobuf.
type protoCodec struct {
	version string
	zw      *zstd.Encoder
}

func newProtoCodec(version string) *protoCodec {
	zw, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
	return &protoCodec{version: version, zw: zw}
}

func (c *protoCodec) size(m store.Message) (int, error) {
	pm, err := ProtoMessage(m)
	if err != nil {
		return 0, err
	}
	n := proto.Size(pm)
	return n + 4, nil // field tag and length in the batch
}

func (c *protoCodec) batch(b Batch, sentAt time.Time) (*syncpb.Batch, error) {
	pb := &syncpb.Batch{Id: b.ID, Household: b.Household, SentAtMs: sentAt.UnixMilli(), Library: "hearth", LibraryVersion: c.version,
		Messages: make([]*syncpb.Message, 0, len(b.Messages))}
	for _, m := range b.Messages {
		pm, err := ProtoMessage(m)
		if err != nil {
			return nil, err
		}
		pb.Messages = append(pb.Messages, pm)
	}
	return pb, nil
}

func (c *protoCodec) encode(b Batch, sentAt time.Time) ([]byte, error) {
	_, body, err := c.encodeRaw(b, sentAt)
	return body, err
}

// encodeRaw returns the batch's protobuf and its zstd.
func (c *protoCodec) encodeRaw(b Batch, sentAt time.Time) (raw, body []byte, err error) {
	pb, err := c.batch(b, sentAt)
	if err != nil {
		return nil, nil, err
	}
	raw, err = proto.Marshal(pb)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: encode batch %s: %w", b.ID, err)
	}
	return raw, c.zw.EncodeAll(raw, nil), nil
}

// TLSFiles name the PEM files of a TLS client: the CA to trust (empty: the system's)
// and an optional client certificate and key.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// Config loads the files into a tls.Config.
func (f TLSFiles) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", f.CAFile)
		}
		c.RootCAs = pool
	}
	if f.CertFile != "" || f.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// HTTPSOptions configure a native HTTPS transport.
type HTTPSOptions struct {
	URL string // where batches are POSTed
	// TokenFile holds a bearer token sent as "Authorization: Bearer …" (read before
	// every request); empty: none.
	TokenFile     string
	TLS           TLSFiles
	MaxBatchBytes int // default 512 KiB (protobuf, before compression)
	Version       string
	Timeout       time.Duration // default 30s
	Now           func() time.Time
	Client        *http.Client // default: one with TLS from TLS
}

// HTTPS posts zstd-compressed protobuf batches to a maker's collector, with an
// Idempotency-Key equal to the batch id.
type HTTPS struct {
	o     HTTPSOptions
	codec *protoCodec
}

// DefaultHTTPSOptions are the documented defaults of the HTTPS transport: the one
// place they are written (a zero field of HTTPSOptions takes its value here;
// internal/config's sync.https.* defaults are these).
func DefaultHTTPSOptions() HTTPSOptions {
	return HTTPSOptions{MaxBatchBytes: 512 << 10, Timeout: 30 * time.Second}
}

// NewHTTPS returns an HTTPS transport.
func NewHTTPS(o HTTPSOptions) (*HTTPS, error) {
	if o.URL == "" {
		return nil, fmt.Errorf("transport: https: no url")
	}
	d := DefaultHTTPSOptions()
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = d.MaxBatchBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Client == nil {
		tc, err := o.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("transport: https: %w", err)
		}
		o.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}}
	}
	return &HTTPS{o: o, codec: newProtoCodec(o.Version)}, nil
}

// Name implements Transport.
func (h *HTTPS) Name() string { return "https" }

// Endpoint is the collector's host, for the audit.
func (h *HTTPS) Endpoint() string { return EndpointHost(h.o.URL) }

// Limits implements Transport.
func (h *HTTPS) Limits() Limits {
	return Limits{MaxMessages: 500, MaxBatchBytes: h.o.MaxBatchBytes, MaxMessageBytes: min(h.o.MaxBatchBytes, SegmentMaxEventBytes), Window: 1}
}

// Size implements Transport.
func (h *HTTPS) Size(m store.Message) (int, error) { return h.codec.size(m) }

// Encode implements Transport.
func (h *HTTPS) Encode(b Batch, sentAt time.Time) ([]byte, error) { return h.codec.encode(b, sentAt) }

// Send implements Transport.
func (h *HTTPS) Send(ctx context.Context, bs []Batch) ([]error, int) {
	errs := make([]error, len(bs))
	wire := 0
	for i, b := range bs {
		raw, body, err := h.codec.encodeRaw(b, h.o.Now())
		if err != nil {
			errs[i] = &Error{Class: Reject, Err: err}
			continue
		}
		bs[i].Payload, bs[i].Wire = raw, len(body)
		var token string
		if h.o.TokenFile != "" {
			t, err := os.ReadFile(h.o.TokenFile)
			if err != nil {
				errs[i] = &Error{Class: Auth, Err: fmt.Errorf("token_file: %w", err)}
				continue
			}
			token = strings.TrimSpace(string(t))
		}
		wire += len(body)
		errs[i] = post(ctx, h.o.Client, h.o.Timeout, h.o.URL, body, h.o.Now, func(hd http.Header) {
			hd.Set("Content-Type", "application/x-protobuf")
			hd.Set("Content-Encoding", "zstd")
			hd.Set("Idempotency-Key", b.ID)
			hd.Set("User-Agent", "hearth/"+h.o.Version)
			if token != "" {
				hd.Set("Authorization", "Bearer "+token)
			}
		}, nil)
	}
	return errs, wire
}

// Close implements Transport.
func (h *HTTPS) Close() error { h.o.Client.CloseIdleConnections(); return nil }
