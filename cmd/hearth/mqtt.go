package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/hearth-iot/hearth/device"
	devmqtt "github.com/hearth-iot/hearth/device/mqtt"
	"github.com/hearth-iot/hearth/device/mqtt/external"
	"github.com/hearth-iot/hearth/device/mqtt/hadiscovery"
	"github.com/hearth-iot/hearth/device/mqtt/homie"
	"github.com/hearth-iot/hearth/device/mqtt/native"
	"github.com/hearth-iot/hearth/device/mqtt/tasmota"
	"github.com/hearth-iot/hearth/device/mqtt/zigbee2mqtt"
	"github.com/hearth-iot/hearth/edge/broker"
	"github.com/hearth-iot/hearth/edge/ingest"
	"github.com/hearth-iot/hearth/edge/registry"
	"github.com/hearth-iot/hearth/internal/config"
)

// mqttWiring is what the agent builds for MQTT devices: the adapters, Home Assistant
// discovery, and the accepted proposals it reads through hadiscovery.State.
type mqttWiring struct {
	embedded devmqtt.Adapters // for the embedded broker: no discovery (device credentials may not teach it)
	external devmqtt.Adapters // for the external broker: everything
	disc     *hadiscovery.Learner
	ha       *hadiscovery.State
	ext      *external.Source // the external-broker source, when one is configured

	mu       sync.Mutex
	accepted map[string]hadiscovery.Proposal // by Mapping.Name, persisted (device.go)

	// onAccept, when set (an external broker is configured), is called by accept
	// (device.go) with mu held, after the State took the proposal and before it is
	// persisted; an error refuses the acceptance.
	onAccept func(hadiscovery.Proposal) error
	// onUnaccept, when set, is called by unaccept with mu held, after the proposal
	// left accepted: it unsubscribes from its state topic when no other accepted
	// entity reads it.
	onUnaccept func(hadiscovery.Proposal)
}

// listenBroker binds broker.listen and broker.tls_listen (the TLS handshake happens
// on each accepted connection).
func (a *agent) listenBroker() error {
	b := a.cfg.Broker
	var err error
	if b.Listen != "" {
		if a.brokerLn, err = listen("broker.listen", b.Listen); err != nil {
			return err
		}
	}
	if b.TLSListen != "" {
		cert, cerr := loadBrokerCert(b)
		if cerr != nil {
			a.closeBrokerListeners()
			return cerr
		}
		ln, lerr := listen("broker.tls_listen", b.TLSListen)
		if lerr != nil {
			a.closeBrokerListeners()
			return lerr
		}
		a.tlsLn = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	return nil
}

func (a *agent) closeBrokerListeners() {
	for _, ln := range []net.Listener{a.brokerLn, a.tlsLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

func (a *agent) brokerListeners() []net.Listener {
	var lns []net.Listener
	for _, ln := range []net.Listener{a.brokerLn, a.tlsLn} {
		if ln != nil {
			lns = append(lns, ln)
		}
	}
	return lns
}

// buildBroker loads the persisted device credentials and builds the embedded broker.
func (a *agent) buildBroker() error {
	if err := a.wireMQTT(); err != nil {
		return err
	}
	b := a.cfg.Broker
	var err error
	a.br, err = broker.New(broker.Options{Auth: a.creds, Sink: a.in, Handler: a.mq.embedded,
		MaxPacketBytes: b.MaxPacketBytes, MaxClients: b.MaxClients, MaxInflight: b.MaxInflight,
		MaxPendingWrites: b.MaxPendingWrites, SessionExpiry: b.SessionExpiry.D(), ConnectTimeout: b.ConnectTimeout.D(), MaxConnecting: b.MaxConnecting,
		PublishRate: b.PublishRate, PublishBurst: b.PublishBurst,
		LockoutFailures: b.LockoutFailures, LockoutWindow: b.LockoutWindow.D(),
		MaxConnectingPerSource: b.MaxConnectingPerSource, MaxTopicLevels: b.MaxTopicLevels, MaxTopicBytes: b.MaxTopicBytes,
		MaxTopicAliases: b.MaxTopicAliases, MaxSubscriptions: b.MaxSubscriptions,
		Logger: a.log, Registerer: a.reg})
	return err
}

// wireMQTT loads the device registry from the store and builds the decoders, once.
func (a *agent) wireMQTT() error {
	if a.mq != nil {
		return nil
	}
	creds, accepted, err := registry.Load(a.st)
	if err != nil {
		return fmt.Errorf("device registry: %w", err)
	}
	// A device id stored before device.ValidID refused ids such as "." or "-x" does not
	// stop the agent: its credential stays (so `hearth device remove` can find it) but
	// ingest refuses its readings; an acceptance naming one is not loaded.
	for _, cr := range creds {
		if err := device.ValidID(cr.Device); err != nil {
			a.log.Warn("registered device id is not valid: its readings are refused; add the device under a valid id and remove this one (hearth device remove)",
				"component", "registry", "device", cr.Device, "err", err)
		}
		a.creds.Set(cr)
	}
	m := a.cfg.MQTT
	mq := &mqttWiring{accepted: map[string]hadiscovery.Proposal{}}
	list := make([]hadiscovery.Proposal, 0, len(accepted))
	for _, p := range accepted {
		if err := device.ValidID(p.Mapping.Device); err != nil {
			a.log.Warn("accepted proposal maps to a device id that is not valid: not loaded; accept it again with --device ID",
				"component", "registry", "name", p.Mapping.Name, "device", p.Mapping.Device, "err", err)
			continue
		}
		mq.accepted[p.Mapping.Name] = p
		list = append(list, p)
	}
	if mq.ha, err = hadiscovery.NewState(list, nil); err != nil {
		return fmt.Errorf("device registry: accepted proposals: %w", err)
	}
	ad, err := mqttAdapters(m)
	if err != nil {
		return err
	}
	// An accepted entity may read a topic a configured mapping reads too (a
	// Zigbee2MQTT device's): Layered reads both, the configured mapping winning.
	layered := devmqtt.Layered{Base: devmqtt.Router{ad.z2m, ad.tas, ad.homie}, Extra: mq.ha}
	dec := devmqtt.Router{native.JSON{KindOf: a.creds.Kind}, native.Proto{KindOf: a.creds.Kind}, layered}
	mq.embedded = devmqtt.Adapters{Learners: []devmqtt.Learner{ad.homieAttrs}, Decoder: dec}
	mq.external = devmqtt.Adapters{Learners: []devmqtt.Learner{ad.homieAttrs}, Decoder: dec}
	if ad.disc != nil {
		// The agent's discovery Learner also starts from the proposals learned before and
		// keeps what it learns (mqttAdapters' one only checks the options).
		known, err := registry.Proposals(a.st)
		if err != nil {
			return fmt.Errorf("device registry: proposals: %w", err)
		}
		if mq.disc, err = hadiscovery.NewLearner(&hadiscovery.LearnerOptions{Prefix: m.Discovery.Prefix,
			MaxProposals: m.Discovery.MaxProposals, Known: known, OnProposal: a.saveProposal}); err != nil {
			return fmt.Errorf("mqtt.discovery: %w", err)
		}
		mq.external.Learners = append(mq.external.Learners, mq.disc)
	}
	a.mq = mq
	return nil
}

// adapters are the decoders and learners of the mqtt section's adapters.
type adapters struct {
	z2m        *zigbee2mqtt.Decoder
	tas        *tasmota.Decoder
	homie      *homie.Decoder
	homieAttrs *homie.Learner
	disc       *hadiscovery.Learner // nil when discovery is off
}

// mqttAdapters builds the adapters of the mqtt section (checkSystem tries it too).
func mqttAdapters(m config.MQTT) (ad adapters, err error) {
	if ad.z2m, err = zigbee2mqtt.New(m.DeviceMappings(), &zigbee2mqtt.Options{BaseTopic: m.Zigbee2MQTT.BaseTopic,
		AttributeOutput: m.Zigbee2MQTT.AttributeOutput}); err != nil {
		return ad, keyError{"mqtt.zigbee2mqtt", err}
	}
	if ad.tas, err = tasmota.New(m.DeviceMappings(), &tasmota.Options{FullTopics: m.Tasmota.FullTopics}); err != nil {
		return ad, keyError{"mqtt.tasmota", err}
	}
	if ad.homie, ad.homieAttrs, err = homie.New(m.DeviceMappings(), &homie.Options{BaseTopic: m.Homie.BaseTopic, MaxDevices: m.Homie.MaxDevices,
		MaxNodes: m.Homie.MaxNodes, MaxProperties: m.Homie.MaxProperties}); err != nil {
		return ad, keyError{"mqtt.homie", err}
	}
	if m.Discovery.Enabled {
		if ad.disc, err = hadiscovery.NewLearner(&hadiscovery.LearnerOptions{Prefix: m.Discovery.Prefix,
			MaxProposals: m.Discovery.MaxProposals}); err != nil {
			return ad, keyError{"mqtt.discovery", err}
		}
	}
	return ad, nil
}

// saveProposal persists what discovery learned, so that a proposal whose config is
// not retained is still proposed after a restart. One store commit per change (a
// config received again unchanged writes nothing).
func (a *agent) saveProposal(configTopic string, p *hadiscovery.Proposal) {
	if err := registry.SaveProposal(a.st, configTopic, p); err != nil {
		a.log.Warn("discovery proposal not persisted: it is proposed again only when its config comes again",
			"component", "registry", "config_topic", configTopic, "err", err)
	}
}

// mqttSources builds the external-broker Source when one is configured.
func (a *agent) mqttSources() ([]device.Source, error) {
	if err := a.wireMQTT(); err != nil {
		return nil, err
	}
	e := a.cfg.MQTT.External
	if e.URL == "" {
		return nil, nil
	}
	pw, tc, err := readExternalSecrets(e)
	if err != nil {
		return nil, err
	}
	topics := e.Topics
	if len(topics) == 0 {
		topics = a.defaultTopics()
	}
	var latest func() ([]device.Reading, error)
	if e.RetainedLookback > 0 {
		latest = a.latestValues
	}
	src, err := external.New(external.Options{URL: e.URL, ClientID: e.ClientID, Username: e.Username, Password: pw,
		TLS: tc, Topics: topics, MaxExtraSubscriptions: e.MaxExtraSubscriptions, Handler: a.mq.external,
		MaxInflight: e.MaxInflight, ReconnectMax: e.ReconnectMax.D(), Retryable: ingest.Retryable, Latest: latest,
		MaxTopicLabels: e.MaxTopicLabels, Logger: a.log, Registerer: a.reg})
	if err != nil {
		return nil, fmt.Errorf("mqtt.external: %w", err)
	}
	// The entities accepted before this start, then each one accepted while it runs.
	a.mq.mu.Lock()
	defer a.mq.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(a.mq.accepted)) {
		if err := subscribeEntity(src, a.mq.accepted[name]); err != nil {
			src.Unregister()
			return nil, err
		}
	}
	a.mq.onAccept = func(p hadiscovery.Proposal) error { return subscribeEntity(src, p) }
	a.mq.onUnaccept = func(p hadiscovery.Proposal) {
		for _, x := range a.mq.accepted {
			if x.StateTopic == p.StateTopic {
				return // another accepted entity still reads it
			}
		}
		src.Unsubscribe(p.StateTopic)
	}
	a.mq.ext = src
	return []device.Source{src}, nil
}

// maxLatestValues bounds the (device, signal, label) values latestValues returns.
const maxLatestValues = 4096

// latestValues returns the latest stored reading of each device, signal and label
// within the newest mqtt.external.retained_lookback events: what a retained message
// is compared with.
func (a *agent) latestValues() ([]device.Reading, error) {
	type key struct {
		dev, label string
		sig        device.Signal
	}
	seen := map[key]bool{}
	var out []device.Reading
	_, _, err := a.st.Latest("", a.cfg.MQTT.External.RetainedLookback, func(_ uint64, r *device.Reading) bool {
		k := key{r.Device, r.Label, r.Signal}
		if !seen[k] {
			seen[k] = true
			out = append(out, *r)
		}
		return len(out) < maxLatestValues
	})
	return out, err
}

// subscribeEntity subscribes the external source to an accepted Home Assistant
// entity's state topic, unless a configured filter covers it (src skips those).
//
// Its availability topic is not subscribed to: the hadiscovery.State reads it only for an
// OnAvailability callback, and the agent sets none, so those messages would only
// be counted as ignored.
func subscribeEntity(src *external.Source, p hadiscovery.Proposal) error {
	err := src.Subscribe(p.StateTopic)
	switch {
	case errors.Is(err, devmqtt.ErrLimit):
		return fmt.Errorf("mqtt.external.max_extra_subscriptions: accepted Home Assistant entity %q (state topic %q): %w",
			p.Mapping.Name, p.StateTopic, err)
	case err != nil:
		return fmt.Errorf("accepted Home Assistant entity %q: state topic: %w", p.Mapping.Name, err)
	}
	return nil
}

var tasmotaVar = regexp.MustCompile(`%[a-z]+%`)

// defaultTopics are the filters of every configured adapter. The state topics of
// accepted Home Assistant entities are added by subscribeEntity.
func (a *agent) defaultTopics() []string {
	m := a.cfg.MQTT
	seen := map[string]bool{}
	var out []string
	add := func(t string) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	add(native.Prefix + "+/readings")
	add(m.Zigbee2MQTT.BaseTopic + "/#")
	for _, ft := range m.Tasmota.FullTopics {
		for _, prefix := range []string{"tele", "stat"} {
			t := strings.ReplaceAll(ft, "%prefix%", prefix)
			t = tasmotaVar.ReplaceAllString(t, "+")
			add(strings.TrimSuffix(t, "/") + "/#")
		}
	}
	add(m.Homie.BaseTopic + "/#")
	if m.Discovery.Enabled {
		add(m.Discovery.Prefix + "/#")
	}
	return out
}

// errNoDiscovery is returned by the proposal routes when discovery is off.
var errNoDiscovery = errors.New("Home Assistant discovery is off (mqtt.discovery.enabled) or no external broker is configured")
