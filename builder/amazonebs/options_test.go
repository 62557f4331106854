package amazonebs

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// TestNoOptionSilentlyIgnored walks every option of Config (top level and
// inside its blocks) and proves that it is one of:
//   - refused: listed in unimplemented; set, validate warns and build
//     refuses before touching AWS (checked here);
//   - without effect, on purpose: listed in noEffect with the reason;
//     set, validate and build warn (checked here);
//   - used: read by code outside the declarations (config.go), so that it
//     reaches a request or changes behaviour; the tests that exercise
//     those paths (steps_test, tags_test, rules_test, sim_test, ...) check
//     what each does.
//
// A new option that is declared and never read fails here.
func TestNoOptionSilentlyIgnored(t *testing.T) {
	code := readSources(t)
	var walk func(rt reflect.Type, path string)
	seen := 0
	walk = func(rt reflect.Type, path string) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			tag, kind, _ := strings.Cut(f.Tag.Get("hcl"), ",")
			if tag == "" && f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type, path) // the shared AccessConfig: options of the block itself
				continue
			}
			if tag == "" || kind == "label" || kind == "remain" {
				continue
			}
			seen++
			name := path + tag
			switch {
			case path == "" && slices.Contains(unimplemented, tag):
				checkRefused(t, f.Name, tag)
				continue // its settings go with it
			case path == "" && noEffect[tag] != "":
				checkWarned(t, f.Name, tag)
			default:
				if !regexp.MustCompile(`\.` + f.Name + `\b`).MatchString(code) {
					t.Errorf("%s (%s) is accepted but never read: wire it, or list it in unimplemented or noEffect", name, f.Name)
				}
			}
			if kind == "block" {
				et := f.Type
				for et.Kind() == reflect.Pointer || et.Kind() == reflect.Slice {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					walk(et, name+".")
				}
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	if seen < 150 {
		t.Fatalf("walked %d options; the walk is broken", seen)
	}
	t.Logf("%d options walked", seen)
}

// readSources is the package's non-test code without config.go (where the
// options are only declared), and the shared AccessConfig's.
func readSources(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "config.go" {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(src)
	}
	// The access options are read where the shared AccessConfig opens
	// its session.
	for _, f := range []string{"access.go", "awsclient.go"} {
		src, err := os.ReadFile(filepath.Join("..", "..", "internal", "awsclient", f))
		if err != nil {
			t.Fatal(err)
		}
		b.Write(src)
	}
	return b.String()
}

// setField gives a Config field a non-zero value of its type.
func setField(t *testing.T, c *Config, field string) {
	t.Helper()
	v := reflect.ValueOf(c).Elem().FieldByName(field)
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		if s.Index(0).Kind() == reflect.String {
			s.Index(0).SetString("x")
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		m.SetMapIndex(reflect.ValueOf("k"), reflect.ValueOf("v"))
		v.Set(m)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	default:
		t.Fatalf("%s: cannot set a %s", field, v.Kind())
	}
}

func checkRefused(t *testing.T, field, tag string) {
	t.Helper()
	c := mustConfig(t, minimal)
	setField(t, c, field)
	v := &validator{}
	c.prepare(v)
	if !slices.Contains(c.Unimplemented(), tag) || !hasDiag(v.diags, hcl.DiagWarning, "Option not implemented by amibake") {
		t.Errorf("%s: not refused (unimplemented %v, %v)", tag, c.Unimplemented(), v.diags)
		return
	}
	_, err := (&Builder{Config: c}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), tag) {
		t.Errorf("%s: build does not refuse it: %v", tag, err)
	}
}

func checkWarned(t *testing.T, field, tag string) {
	t.Helper()
	c := mustConfig(t, minimal)
	setField(t, c, field)
	v := &validator{}
	c.prepare(v)
	if !hasDiag(v.diags, hcl.DiagWarning, "Option without effect in amibake") {
		t.Errorf("%s: set without a warning (%v)", tag, v.diags)
	}
}
