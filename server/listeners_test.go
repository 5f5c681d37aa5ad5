package server

import (
	"strings"
	"testing"

	"github.com/messagebus/messagebus/internal/broker"
)

func TestParseListeners(t *testing.T) {
	got, err := parseListeners("internal:pulsar://10.0.0.1:6650, internal:pulsar+ssl://10.0.0.1:6651,external:pulsar://broker.example.com:16650")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]broker.Listener{
		"internal": {PulsarURL: "pulsar://10.0.0.1:6650", PulsarTLSURL: "pulsar+ssl://10.0.0.1:6651"},
		"external": {PulsarURL: "pulsar://broker.example.com:16650"},
	}
	if len(got) != len(want) || got["internal"] != want["internal"] || got["external"] != want["external"] {
		t.Fatalf("got %+v", got)
	}
	if ls, err := parseListeners(" "); err != nil || ls != nil {
		t.Fatalf("empty: %v %v", ls, err)
	}
	for in, words := range map[string]string{
		"pulsar://h:6650":                       "scheme", // no name: "pulsar" is the name, "//h:6650" no URL
		"a:http://h:80":                         "scheme",
		"a:pulsar://h":                          "needs a host and a port",
		"a:pulsar://h:1,a:pulsar://g:2":         "two pulsar:// URLs",
		"a:pulsar+ssl://h:1,a:pulsar+ssl://g:2": "two pulsar+ssl:// URLs",
		":pulsar://h:1":                         "want name:",
		"a":                                     "want name:",
		"a:pulsar://h:1/path":                   "is not a",
	} {
		if _, err := parseListeners(in); err == nil || !strings.Contains(err.Error(), words) {
			t.Errorf("%q: error %v, want it to say %q", in, err, words)
		}
	}
}

func FuzzParseListeners(f *testing.F) {
	f.Add("internal:pulsar://10.0.0.1:6650,internal:pulsar+ssl://10.0.0.1:6651")
	f.Add("a:pulsar://[::1]:6650")
	f.Add("a:pulsar://h:1,,b:x")
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := parseListeners(s)
		if err != nil {
			return
		}
		for name, l := range ls {
			if name == "" || (l.PulsarURL == "" && l.PulsarTLSURL == "") {
				t.Fatalf("%q: listener %q %+v", s, name, l)
			}
			if l.PulsarURL != "" && !strings.HasPrefix(l.PulsarURL, "pulsar://") || l.PulsarTLSURL != "" && !strings.HasPrefix(l.PulsarTLSURL, "pulsar+ssl://") {
				t.Fatalf("%q: listener %q %+v", s, name, l)
			}
		}
	})
}
