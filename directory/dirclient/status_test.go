package dirclient

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWriteStatus(t *testing.T) {
	seeds := newSeeds(t, 3)
	relays := testRelays(t, 3)
	publishAll(t, seeds, t0, relays)
	seeds[2].ts.Close()
	c, _ := newClient(t, pins(seeds), "", t0)
	v, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(2 * time.Minute) // after fresh-until

	var text bytes.Buffer
	if err := WriteStatus(&text, v, c.Seeds(), now, false); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, want := range []string{"stale but valid", "valid-after", "fresh-until", "valid-until",
		"2031-05-06T07:08:09Z", seeds[0].seed.URL, seeds[2].seed.ID.Short(), "Exit Running Valid"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	for _, e := range relays {
		d := e.Descriptor
		if !strings.Contains(out, d.Nickname) || !strings.Contains(out, d.ORAddr.String()) || !strings.Contains(out, d.NodeID().Short()) {
			t.Errorf("text lacks relay %s at %s:\n%s", d.Nickname, d.ORAddr, out)
		}
	}
	if !lineHas(out, "s3", "no") || !lineHas(out, "s1", "yes") {
		t.Errorf("counted column wrong:\n%s", out)
	}

	var js bytes.Buffer
	if err := WriteStatus(&js, v, c.Seeds(), now, true); err != nil {
		t.Fatal(err)
	}
	var got struct {
		State      string  `json:"state"`
		ValidAfter *string `json:"valid_after"`
		FreshUntil *string `json:"fresh_until"`
		ValidUntil *string `json:"valid_until"`
		Seeds      []struct {
			Name    string `json:"name"`
			URL     string `json:"url"`
			ID      string `json:"id"`
			Counted *bool  `json:"counted"`
		} `json:"seeds"`
		Relays []struct {
			Name       string   `json:"name"`
			ID         string   `json:"id"`
			ORAddr     string   `json:"or_addr"`
			Flags      []string `json:"flags"`
			Bandwidth  *uint64  `json:"bandwidth"`
			ExitPolicy []string `json:"exit_policy"`
		} `json:"relays"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, js.String())
	}
	if got.State != StateStale || got.ValidAfter == nil || *got.ValidAfter != "2031-05-06T07:08:09Z" ||
		got.FreshUntil == nil || got.ValidUntil == nil {
		t.Errorf("times: %+v", got)
	}
	if len(got.Seeds) != 3 || got.Seeds[2].Name != "s3" || got.Seeds[2].Counted == nil || *got.Seeds[2].Counted ||
		!*got.Seeds[0].Counted || got.Seeds[0].ID != seeds[0].seed.ID.String() || got.Seeds[0].URL != seeds[0].seed.URL {
		t.Errorf("seeds: %+v", got.Seeds)
	}
	if len(got.Relays) != len(relays) {
		t.Fatalf("%d relays in JSON, want %d", len(got.Relays), len(relays))
	}
	for i, r := range got.Relays {
		if r.Name != "relay"+string(rune('0'+i)) {
			t.Errorf("relay %d is %s: not sorted by nickname", i, r.Name)
		}
		d := relays[i].Descriptor
		if r.ID != d.NodeID().String() || r.ORAddr != d.ORAddr.String() || r.Bandwidth == nil || *r.Bandwidth != d.Bandwidth {
			t.Errorf("relay %s: %+v", r.Name, r)
		}
		if !slices.Equal(r.Flags, relays[i].Flags.Names()) {
			t.Errorf("relay %s: flags %v", r.Name, r.Flags)
		}
		if (i == 0) != (len(r.ExitPolicy) > 0) || r.ExitPolicy == nil {
			t.Errorf("relay %s: exit policy %v", r.Name, r.ExitPolicy)
		}
	}
	// The key DESIGN.md promises to scripts, read the loosest way.
	var loose map[string]any
	json.Unmarshal(js.Bytes(), &loose)
	r0 := loose["relays"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "or_addr", "flags"} {
		if _, ok := r0[k]; !ok {
			t.Errorf("relay object lacks %q", k)
		}
	}
}

func TestWriteStatusNoView(t *testing.T) {
	seeds := pins(newSeeds(t, 2))
	var text, js bytes.Buffer
	if err := WriteStatus(&text, nil, seeds, t0, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "consensus: none") || !strings.Contains(text.String(), "s2") {
		t.Errorf("text:\n%s", text.String())
	}
	if err := WriteStatus(&js, nil, seeds, t0, true); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["state"] != StateNone || got["relays"] == nil || len(got["relays"].([]any)) != 0 {
		t.Errorf("JSON without a view: %s", js.String())
	}
}

// lineHas reports whether a line of out starts with the field first and
// ends with the field last.
func lineHas(out, first, last string) bool {
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == first && f[len(f)-1] == last {
			return true
		}
	}
	return false
}

// TestWriteCachedStatusNeverSaysFresh: a view from the disk cache, shown
// because no seed answered, is marked as such: no "yes" beside a seed and
// no bare "fresh", even while its own times say fresh.
func TestWriteCachedStatusNeverSaysFresh(t *testing.T) {
	seeds := newSeeds(t, 3)
	publishAll(t, seeds, t0, testRelays(t, 2))
	c, _ := newClient(t, pins(seeds), "", t0)
	v, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var text, js bytes.Buffer
	if err := WriteCachedStatus(&text, v, c.Seeds(), t0, false); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	if strings.Contains(out, " yes") || !strings.Contains(out, "cached") || !strings.Contains(out, "consensus: cached, no seed answered") {
		t.Fatalf("a cached view shown as the network's:\n%s", out)
	}
	if err := WriteCachedStatus(&js, v, c.Seeds(), t0, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"offline": true`) || strings.Contains(js.String(), `"state": "fresh"`) {
		t.Fatalf("JSON of a cached view:\n%s", js.String())
	}
}
