package broker

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkDurablePublish: 4 raw MQTT 3.1.1 publishers, 32 QoS 1 publishes in flight
// each, through the broker into a real store; b.N messages in all. Reports msgs/s.
func BenchmarkDurablePublish(b *testing.B) {
	r := newRig(b, Options{PublishRate: 1e9, PublishBurst: 1 << 30}, nil)
	const pubs, window = 4, 32
	per := max(b.N/pubs, 1)
	conns := make([]net.Conn, pubs)
	devs := []string{"fridge1", "plug1", "washer1", "fridge1"}
	for i := range conns {
		c, err := net.Dial("tcp", r.addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		body := mqttString(nil, "MQTT")
		body = append(body, 4, 0xC2, 0, 60)
		body = mqttString(body, fmt.Sprintf("bench-%d", i))
		body = mqttString(body, devs[i])
		body = mqttString(body, r.pw[devs[i]])
		if _, err := c.Write(packet(0x10, body)); err != nil {
			b.Fatal(err)
		}
		var ack [4]byte
		if _, err := io.ReadFull(c, ack[:]); err != nil || ack[3] != 0 {
			b.Fatalf("connack %x %v", ack, err)
		}
		conns[i] = c
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem := make(chan struct{}, window)
			done := make(chan struct{})
			go func() {
				rd := bufio.NewReader(c)
				var hdr [4]byte
				for range per {
					if _, err := io.ReadFull(rd, hdr[:]); err != nil {
						b.Error(err)
						break
					}
					<-sem
				}
				close(done)
			}()
			w := bufio.NewWriter(c)
			topic := mqttString(nil, "hearth/v1/"+devs[i]+"/readings")
			var buf []byte
			for j := range per {
				sem <- struct{}{}
				payload := fmt.Sprintf(`{"signal":"temperature","value":%d,"boot":%d,"seq":%d}`, j%100, i+1, j+1)
				buf = append(append(append(buf[:0], topic...), byte((j%65535+1)>>8), byte(j%65535+1)), payload...)
				_, _ = w.Write(packet(0x32, buf))
				if len(sem) == cap(sem) || j == per-1 {
					_ = w.Flush()
				}
			}
			<-done
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*pubs)/time.Since(start).Seconds(), "msgs/s")
	_ = binary.BigEndian
	mfs, _ := r.reg.Gather()
	for _, mf := range mfs {
		if h := mf.GetMetric()[0].GetHistogram(); h != nil && strings.HasPrefix(mf.GetName(), "hearth_store") {
			b.Logf("%s: count %d mean %.4g", mf.GetName(), h.GetSampleCount(), h.GetSampleSum()/float64(h.GetSampleCount()))
		}
	}
}
