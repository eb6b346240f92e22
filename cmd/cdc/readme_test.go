package main

import (
	"os"
	"strings"
	"testing"

	"github.com/martencdc/cdc/config"
)

// TestShippedConfigs: the configuration example in README.md and the one
// docker-compose.yml uses are valid.
func TestShippedConfigs(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```yaml\n")
	if !ok {
		t.Fatal("README.md has no yaml example")
	}
	example, _, _ := strings.Cut(rest, "```")
	deploy, err := os.ReadFile("../../deploy/cdc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := func(k string) (string, bool) { return "secret", k == "PGPASSWORD" }
	for name, data := range map[string]string{"README.md": example, "deploy/cdc.yaml": string(deploy)} {
		cfg, err := config.Parse(name, []byte(data), env)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(cfg.Pipelines) == 0 || cfg.Pipelines[0].Source.Slot != "cdc_helpdesk" || cfg.Pipelines[0].Source.Schema != "helpdesk" {
			t.Fatalf("%s: %+v", name, cfg.Pipelines)
		}
	}
}
