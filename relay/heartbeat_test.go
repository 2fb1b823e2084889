package relay

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestHeartbeatSaysHowTheRelayIsDoing: the heartbeat line has uptime,
// circuits, traffic and the relay's flags in the consensus it mirrors.
func TestHeartbeatSaysHowTheRelayIsDoing(t *testing.T) {
	n := newTestNetwork(t, 1)
	r := n.startRelay("relay", false)
	deadline := time.Now().Add(hangTimeout)
	for {
		e := r.eng.Load()
		if e != nil {
			line := fmt.Sprint(e.heartbeatAttrs(time.Now().Add(-time.Hour)))
			for _, want := range []string{"uptime=1h0m0s", "circuits=", "mb_in=", "flags="} {
				if !strings.Contains(line, want) {
					t.Fatalf("heartbeat %s lacks %s", line, want)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the relay never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
