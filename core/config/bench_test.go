package config

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkLoad loads a large configuration: 1000 pools of one /28 each, one BGPAdvertisement
// per pool with a community and a local preference, 100 peers and one L2Advertisement
// covering everything.
func BenchmarkLoad(b *testing.B) {
	var docs []string
	for i := range 1000 {
		docs = append(docs, pool(fmt.Sprintf("pool-%04d", i), fmt.Sprintf("10.%d.%d.0/28", i/256, i%256)))
		docs = append(docs, bgpAdv(fmt.Sprintf("adv-%04d", i), fmt.Sprintf("{ipAddressPools: [pool-%04d], localPref: %d, communities: [\"65000:%d\"]}", i, 100+i, i)))
	}
	for i := range 100 {
		docs = append(docs, peer(fmt.Sprintf("peer-%03d", i), fmt.Sprintf("{myASN: 64500, peerASN: 64501, peerAddress: 192.168.0.%d, holdTime: 9s}", i+1)))
	}
	docs = append(docs, l2Adv("everything", "{}"))
	data := []byte(strings.Join(docs, "---\n"))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := Load(Source{Name: "big.yaml", Data: data})
		if err != nil || len(res.Config.Pools) != 1000 {
			b.Fatalf("Load: %v", err)
		}
	}
}
