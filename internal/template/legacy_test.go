package template

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func testEnv() *legacyEnv {
	return &legacyEnv{
		vars:      map[string]string{"region": "us-east-1", "name": "Web Server", "secret": "s3cr3t"},
		env:       func(k string) string { return map[string]string{"HOME": "/home/ci"}[k] },
		buildName: "web",
		buildType: "amazon-ebs",
		tmplDir:   "/tmpl",
		cwd:       "/srv/project",
		now:       time.Date(2026, 11, 25, 23, 44, 41, 0, time.UTC),
	}
}

func TestLegacyRender(t *testing.T) {
	tests := []struct {
		name, in, want string
		enableEnv      bool
	}{
		{"plain", "no templates here", "no templates here", false},
		{"user backquote", "{{user `region`}}", "us-east-1", false},
		{"user quoted", `{{ user "region" }}`, "us-east-1", false},
		{"timestamp", "ami {{timestamp}}", "ami 1795650281", false},
		{"isotime default", "{{isotime}}", "2026-11-25T23:44:41Z", false},
		{"isotime layout", `{{isotime "2006-01-02-1504"}}`, "2026-11-25-2344", false},
		{"clean_resource_name", `{{clean_resource_name "a:b/c(d)é"}}`, "a-b/c(d)--", false},
		{"clean pipe", "{{user `name` | clean_resource_name | lower}}", "web server", false},
		{"build_name", "{{build_name}}-{{build_type}}", "web-amazon-ebs", false},
		{"upper", "{{upper `abc`}}", "ABC", false},
		{"split", `{{split "a-b-c" "-" 1}}`, "b", false},
		{"replace", `{{replace "a" "x" 1 "banana"}}`, "bxnana", false},
		{"replace_all", `{{replace_all "a" "x" "banana"}}`, "bxnxnx", false},
		{"packer_version", "{{packer_version}}", PackerVersion, false},
		{"template_dir", "{{template_dir}}/scripts", "/tmpl/scripts", false},
		{"pwd", "{{pwd}}", "/srv/project", false},
		{"env in default", "{{env `HOME`}}", "/home/ci", true},
		{"env unset", "{{env `NOPE`}}", "", true},
		// Build-time data is kept for RenderBuildTime, verbatim.
		{"source ami kept", "base {{ .SourceAMI }} x", "base {{ .SourceAMI }} x", false},
		{"mixed", "{{user `region`}}-{{ .SourceAMIName | clean_resource_name }}-{{timestamp}}", "us-east-1-{{ .SourceAMIName | clean_resource_name }}-1795650281", false},
		{"adjacent", "{{timestamp}}{{.BuildRegion}}", "1795650281{{.BuildRegion}}", false},
		{"tags", "{{ .SourceAMITags.Team }}", "{{ .SourceAMITags.Team }}", false},
		{"string with braces kept", `{{ printf "%s}}" .SourceAMI }}!`, `{{ printf "%s}}" .SourceAMI }}!`, false},
		{"context func inside build-time action", "{{ printf \"%s-%s\" (user `region`) .SourceAMI }}", `{{printf "%s-%s" ("us-east-1") .SourceAMI}}`, false},
		{"if on build data", "{{if .SourceAMI}}yes{{end}} {{upper `x`}}", "{{if .SourceAMI}}yes{{end}} X", false},
		{"build func kept", "{{ build `ID` }}", "{{ build `ID` }}", false},
		{"trim markers", "a  {{- timestamp -}}  b", "a1795650281b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testEnv()
			e.enableEnv = tt.enableEnv
			got, err := e.render(tt.in)
			if err != nil {
				t.Fatalf("render(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("render(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLegacyRenderErrors(t *testing.T) {
	tests := []struct {
		name, in, summary, detail string
		offset                    int // -1: no offset expected
	}{
		{"unknown function", "x {{ timestmp }}", "Unknown template function", `There is no function named "timestmp". Did you mean "timestamp"?`, -1},
		{"env outside defaults", "{{env `HOME`}}", "Function env not allowed here", "{{env `HOME`}} may only be used", 2},
		{"unclosed", "{{user `a`", "Invalid template", "unclosed action", -1},
		{"split out of range", `{{split "a" "-" 3}}`, "Invalid split index", "index 3 is out of range", 2},
		{"isotime args", `{{isotime "a" "b"}}`, "Invalid isotime call", "at most one", 2},
		{"wrong arg count", `{{upper}}`, "Invalid template", "wrong number of args for upper", -1},
		{"define", `{{define "x"}}y{{end}}`, "Invalid template", "not supported", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := testEnv().render(tt.in)
			te, ok := err.(*templateError)
			if !ok {
				t.Fatalf("render(%q) error = %v (%T), want *templateError", tt.in, err, err)
			}
			if te.summary != tt.summary || !strings.Contains(te.msg, tt.detail) {
				t.Errorf("render(%q) = %q / %q, want %q / containing %q", tt.in, te.summary, te.msg, tt.summary, tt.detail)
			}
			if tt.offset >= 0 && (!te.hasOffset || te.offset != tt.offset) {
				t.Errorf("offset = %d (known %v), want %d", te.offset, te.hasOffset, tt.offset)
			}
		})
	}
}

func TestRenderBuildTime(t *testing.T) {
	data := BuildTimeData{
		BuildRegion:           "ap-northeast-1",
		SourceAMI:             "ami-0123",
		SourceAMIName:         "ubuntu/images/noble:24.04",
		SourceAMIOwner:        "099720109477",
		SourceAMIOwnerName:    "amazon",
		SourceAMICreationDate: "2026-01-02T03:04:05.000Z",
		SourceAMITags:         map[string]string{"Team": "Infra"},
		Build:                 map[string]string{"ID": "i-0abc"},
	}
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"{{ .SourceAMI }} in {{.BuildRegion}}", "ami-0123 in ap-northeast-1"},
		{"{{ .SourceAMIName | clean_resource_name }}", "ubuntu/images/noble-24.04"},
		{"{{.SourceAMIOwner}}/{{.SourceAMIOwnerName}}/{{.SourceAMICreationDate}}", "099720109477/amazon/2026-01-02T03:04:05.000Z"},
		{"{{ .SourceAMITags.Team | lower }}", "infra"},
		{"[{{ .SourceAMITags.Missing }}]", "[]"},
		{"{{ build `ID` }}", "i-0abc"},
		{`{{printf "%s-%s" ("us-east-1") .SourceAMI}}`, "us-east-1-ami-0123"},
	}
	for _, tt := range tests {
		got, err := RenderBuildTime(tt.in, data)
		if err != nil || got != tt.want {
			t.Errorf("RenderBuildTime(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := RenderBuildTime("{{ .NoSuchField }}", data); err == nil || !strings.Contains(err.Error(), "NoSuchField") {
		t.Errorf("unknown field: err = %v, want one naming NoSuchField", err)
	}
	// The loader's output for a mixed string renders completely at build time.
	kept, err := testEnv().render("{{user `region`}}-{{ .SourceAMIName | clean_resource_name }}")
	if err != nil {
		t.Fatal(err)
	}
	got, err := RenderBuildTime(kept, data)
	if err != nil || got != "us-east-1-ubuntu/images/noble-24.04" {
		t.Errorf("two-phase render = %q, %v", got, err)
	}
}

func TestUUIDFormat(t *testing.T) {
	got, err := testEnv().render("{{uuid}}")
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(got) {
		t.Errorf("uuid = %q, %v", got, err)
	}
}

func BenchmarkLegacyRender(b *testing.B) {
	e := testEnv()
	for b.Loop() {
		if _, err := e.render("hello_ami {{timestamp}} {{user `region`}} {{ .SourceAMIName }}"); err != nil {
			b.Fatal(err)
		}
	}
}
