package shell

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// DisconnectExitCode is Packer's pseudo exit status for a command whose
// connection dropped; listing it in valid_exit_codes accepts a disconnect.
const DisconnectExitCode = 2300218

// ExitCodeError is a script's exit status that valid_exit_codes rejects.
type ExitCodeError struct {
	Code    int
	Allowed []int
}

func (e *ExitCodeError) Error() string {
	return fmt.Sprintf("Script exited with non-zero exit status: %d. Allowed exit codes are: %v", e.Code, e.Allowed)
}

// CheckExitCode returns an *ExitCodeError unless code is in valid (or 0
// when valid is empty).
func CheckExitCode(code int, valid []int) error {
	if len(valid) == 0 {
		valid = []int{0}
	}
	if slices.Contains(valid, code) {
		return nil
	}
	return &ExitCodeError{Code: code, Allowed: valid}
}

// BadVars returns the environment_vars entries not of the form key=value.
func BadVars(vars []string) []string {
	var bad []string
	for _, kv := range vars {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			bad = append(bad, kv)
		}
	}
	return bad
}

// Quote escapes single quotes for a value placed inside '...' by an
// env_var_format: ' becomes '"'"', as Packer does.
func Quote(v string) string { return strings.ReplaceAll(v, "'", `'"'"'`) }

// FlattenEnv renders the environment the way Packer does: the built-in
// variables, then environment_vars, then env (which wins on duplicates),
// sorted by name, each printed with format ("%s='%s' ") after quoting.
func FlattenEnv(format string, builtin map[string]string, vars []string, env map[string]string) string {
	all := make(map[string]string, len(builtin)+len(vars)+len(env))
	for k, v := range builtin {
		all[k] = v
	}
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		all[k] = v
	}
	for k, v := range env {
		all[k] = v
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, format, k, Quote(all[k]))
	}
	return b.String()
}
