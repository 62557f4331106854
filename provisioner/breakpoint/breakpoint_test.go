package breakpoint

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amibake/amibake/internal/ui"
	"github.com/amibake/amibake/provisioner"
	"github.com/amibake/amibake/provisioner/provisionertest"
)

func TestBreakpoint(t *testing.T) {
	tests := []struct {
		name    string
		hcl     string
		answer  func(ctx context.Context, q string) (string, error)
		want    []string
		asked   bool
		wantErr string
	}{
		{name: "disabled", hcl: `disable = true`, want: []string{"say: Breakpoint provisioner disabled; continuing..."}},
		{name: "disabled with note", hcl: "disable = true\nnote = \"one\"",
			want: []string{`say: Breakpoint provisioner with note "one" disabled; continuing...`}},
		{name: "enter pressed", hcl: `note = "look at /etc"`, asked: true,
			answer: func(context.Context, string) (string, error) { return "", nil },
			want:   []string{`say: Pausing at breakpoint provisioner with note "look at /etc".`}},
		{name: "no terminal continues", asked: true,
			want: []string{"say: Pausing at breakpoint provisioner.", "say: Not an interactive terminal: continuing without pausing."}},
		{name: "stdin closed fails", asked: true, wantErr: "Error asking for input: EOF",
			answer: func(context.Context, string) (string, error) { return "", io.EOF }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := New(provisionertest.HCL(t, "breakpoint", tt.hcl, nil), nil)
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			u := &provisionertest.UI{Answer: tt.answer}
			err := p.Provision(context.Background(), u, nil, &provisioner.Build{})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got %v want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(u.Lines, tt.want) && tt.want != nil {
				t.Errorf("log\n got %q\nwant %q", u.Lines, tt.want)
			}
			if got := slices.Equal(u.Asked, []string{"Press enter to continue."}); got != tt.asked {
				t.Errorf("asked %q", u.Asked)
			}
		})
	}
}

// With the real UI in a non-interactive run, the breakpoint must not hang.
func TestBreakpointRealUINonInteractive(t *testing.T) {
	ios, _, out, _ := ui.Test()
	root := ui.New(ios, ui.Options{})
	p, _ := New(provisionertest.JSON(t, "breakpoint", `{"note": "n"}`), nil)
	done := make(chan error, 1)
	go func() {
		done <- p.Provision(context.Background(), root.ForBuild("amazon-ebs"), nil, &provisioner.Build{})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("breakpoint hung without a terminal")
	}
	if !strings.Contains(out.String(), "==> amazon-ebs: Not an interactive terminal: continuing without pausing.") {
		t.Errorf("output:\n%s", out)
	}
}

func TestBreakpointCancelled(t *testing.T) {
	p, _ := New(provisionertest.HCL(t, "breakpoint", ``, nil), nil)
	ctx, cancel := context.WithCancel(context.Background())
	u := &provisionertest.UI{Answer: func(ctx context.Context, q string) (string, error) {
		cancel()
		<-ctx.Done()
		return "", ctx.Err()
	}}
	if err := p.Provision(ctx, u, nil, &provisioner.Build{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestUnknownOption(t *testing.T) {
	_, diags := New(provisionertest.HCL(t, "breakpoint", "\nnotes = \"x\"", nil), nil)
	if !diags.HasErrors() || diags[0].Subject.Start.Line != 2 {
		t.Fatalf("got %v", diags)
	}
}
