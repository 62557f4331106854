package template

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// volatileMark is the cty mark on values read from the clock or from
// randomness (timestamp(), uuidv4(), bcrypt(), legacy_isotime(), and in
// legacy JSON {{timestamp}}, {{isotime}}, {{uuid}}). Marks follow a value
// through locals, string templates and function calls, so one load tells
// which settings change from run to run: the input digest leaves them out.
type volatileMark struct{}

// markVolatile marks v as read from the clock or from randomness.
func markVolatile(v cty.Value) cty.Value { return v.Mark(volatileMark{}) }

// IsVolatile reports whether any part of v was read from the clock or from
// randomness.
func IsVolatile(v cty.Value) bool {
	_, pvm := v.UnmarkDeepWithPaths()
	for _, p := range pvm {
		if _, ok := p.Marks[volatileMark{}]; ok {
			return true
		}
	}
	return false
}

// volatileFunc returns f with its result marked volatile.
func volatileFunc(f function.Function) function.Function {
	spec := &function.Spec{
		Description: f.Description(),
		Params:      f.Params(),
		VarParam:    f.VarParam(),
		Type:        f.ReturnTypeForValues,
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, err := f.Call(args)
			if err != nil {
				return cty.NilVal, err
			}
			return markVolatile(v), nil
		},
	}
	return function.New(spec)
}

// Volatile collects the settings a decode read from volatile values, as
// paths in the plugin's option names: "ami_name", "tags.Built",
// "launch_block_device_mappings[0].volume_size", "inline[2]". A value
// that is volatile as a whole (a list split from timestamp()) lists each
// of its elements. Safe for concurrent use.
type Volatile struct {
	mu    sync.Mutex
	paths map[string]bool
}

// Paths returns the collected paths, sorted.
func (v *Volatile) Paths() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]string, 0, len(v.paths))
	for p := range v.paths {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (v *Volatile) add(p string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.paths == nil {
		v.paths = map[string]bool{}
	}
	v.paths[p] = true
}

// Tracked returns a copy of b whose Decode adds to vol the options it read
// from volatile values. b itself is unchanged, so builds that share a
// block can track it concurrently.
func (b Block) Tracked(vol *Volatile) Block {
	b.vol = vol
	return b
}

// trail is where a decode is in the plugin's settings, for Volatile.
type trail struct {
	vol  *Volatile
	path string
}

func (t *trail) attr(name string) *trail {
	if t == nil {
		return nil
	}
	return &trail{vol: t.vol, path: joinPath(t.path, name)}
}

func (t *trail) index(i int) *trail {
	if t == nil {
		return nil
	}
	return &trail{vol: t.vol, path: fmt.Sprintf("%s[%d]", t.path, i)}
}

// record adds the volatile parts of a decoded value: marks are the paths
// UnmarkDeepWithPaths found in the value as written, val is the value
// converted to the option's type.
func (t *trail) record(marks []cty.PathValueMarks, val cty.Value) {
	if t == nil {
		return
	}
	for _, pm := range marks {
		if _, ok := pm.Marks[volatileMark{}]; !ok {
			continue
		}
		base := t.path + pathString(pm.Path)
		sub, err := pm.Path.Apply(val)
		if err != nil {
			// The conversion reshaped the value (a set, say): the
			// whole option is volatile.
			t.vol.add(t.path)
			continue
		}
		leaves(sub, base, t.vol.add)
	}
}

// pathString renders a cty path in the option-name notation of Volatile.
func pathString(p cty.Path) string {
	var b strings.Builder
	for _, step := range p {
		switch s := step.(type) {
		case cty.GetAttrStep:
			b.WriteString("." + s.Name)
		case cty.IndexStep:
			if s.Key.Type() == cty.String {
				b.WriteString("." + s.Key.AsString())
			} else if s.Key.Type() == cty.Number {
				i, _ := s.Key.AsBigFloat().Int64()
				fmt.Fprintf(&b, "[%d]", i)
			}
		}
	}
	return b.String()
}

// leaves calls add with the path of every primitive value inside v (v's
// own path for a primitive, a null, an unknown or an empty collection).
func leaves(v cty.Value, path string, add func(string)) {
	if v.IsNull() || !v.IsKnown() || (v.Type().IsCollectionType() || v.Type().IsTupleType()) && v.LengthInt() == 0 {
		add(path)
		return
	}
	ty := v.Type()
	switch {
	case ty.IsObjectType() || ty.IsMapType():
		if ty.IsObjectType() && len(ty.AttributeTypes()) == 0 {
			add(path)
			return
		}
		for k, ev := range v.AsValueMap() {
			leaves(ev, joinPath(path, k), add)
		}
	case ty.IsListType() || ty.IsTupleType() || ty.IsSetType():
		for i, ev := range v.AsValueSlice() {
			leaves(ev, fmt.Sprintf("%s[%d]", path, i), add)
		}
	default:
		add(path)
	}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
