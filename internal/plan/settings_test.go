package plan

import (
	"reflect"
	"strings"
	"testing"
)

func TestSettingsAndMasking(t *testing.T) {
	type inner struct {
		Name string `hcl:"name"`
	}
	type cfg struct {
		Region  string            `hcl:"region,optional"`
		Unset   string            `hcl:"unset,optional"`
		Flag    *bool             `hcl:"flag,optional"`
		Tags    map[string]string `hcl:"tags,optional"`
		List    []inner           `hcl:"item,block"`
		Derived string
	}
	f := false
	got := settings(cfg{Region: "r", Flag: &f, Tags: map[string]string{"k": "pw=hunter2!"}, List: []inner{{"a"}}, Derived: "x"})
	want := map[string]any{"region": "r", "flag": false, "tags": map[string]any{"k": "pw=hunter2!"}, "item": []any{map[string]any{"name": "a"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("settings = %#v\nwant %#v", got, want)
	}
	masked := maskSecrets(got, []string{"hunter2", ""})
	tag := masked.(map[string]any)["tags"].(map[string]any)["k"].(string)
	if strings.Contains(tag, "hunter2") || !strings.HasPrefix(tag, "sensitive:") {
		t.Errorf("masked tag %q", tag)
	}
	if other := hashed("pw=hunter3!"); other == tag {
		t.Error("two secrets hash alike")
	}
	if again := hashed("pw=hunter2!"); again != tag {
		t.Error("hash not stable")
	}
	// A secret used as a map key is hashed too.
	m := maskSecrets(map[string]any{"hunter2": "v"}, []string{"hunter2"}).(map[string]any)
	for k := range m {
		if strings.Contains(k, "hunter2") {
			t.Errorf("key %q kept the secret", k)
		}
	}
}
