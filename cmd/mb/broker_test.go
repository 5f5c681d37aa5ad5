package main

import (
	"testing"

	"github.com/spf13/viper"
)

// TestBrokerWorkersOnByDefault: mb broker and mb standalone both run the
// functions and connectors workers (instances are placed across the
// brokers); an environment variable still turns them off.
func TestBrokerWorkersOnByDefault(t *testing.T) {
	names := []string{"functions-worker-enabled", "connectors-enabled"}
	for _, tc := range []struct {
		cmd  string
		env  string
		want bool
	}{{"broker", "", true}, {"standalone", "", true}, {"broker", "false", false}} {
		cmd := newStandaloneCommand()
		if tc.cmd == "broker" {
			cmd = newBrokerCommand()
		}
		if tc.env != "" {
			t.Setenv("MB_FUNCTIONS_WORKER_ENABLED", tc.env)
			t.Setenv("MB_CONNECTORS_ENABLED", tc.env)
		}
		v := viper.New()
		if err := loadConfig(cmd, v); err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if got := v.GetBool(name); got != tc.want {
				t.Errorf("mb %s (env %q): %s = %v, want %v", tc.cmd, tc.env, name, got, tc.want)
			}
		}
	}
}
