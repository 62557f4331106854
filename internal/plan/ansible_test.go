package plan

import (
	"bytes"
	"strings"
	"testing"

	"github.com/amibake/amibake/internal/template"
)

// The Ansible provisioners' playbooks and the directories they use enter
// the input digest and the plan.
func TestDigestCoversAnsibleFiles(t *testing.T) {
	e := newEnv(t)
	t.Chdir("../ansible")
	const tmpl = "ansible.pkr.hcl"
	doc := e.plan(t, tmpl, template.LoadOptions{})
	base := doc.Builds[0].InputDigest
	// ansible-local's default staging directory is random: not volatile
	// input.
	if again := e.digestOf(t, tmpl, template.LoadOptions{}); again != base {
		t.Fatalf("digest not stable: %s then %s", base, again)
	}
	var text bytes.Buffer
	if err := doc.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"playbook ./ansible/site.yml", "playbook roles ansible/roles", "roles_path ./shared-roles",
		"playbook ./local/local.yml", "role_paths ./local/roles/web", "group_vars ./local/group_vars",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, text.String())
		}
	}
	for _, file := range []string{
		"ansible/site.yml",
		"ansible/roles/base/tasks/main.yml",
		"shared-roles/common/tasks/main.yml",
		"local/local.yml",
		"local/roles/web/tasks/main.yml",
		"local/group_vars/all.yml",
	} {
		t.Run("one byte of "+file, func(t *testing.T) {
			snapshot := snapshotDir(t, ".")
			defer restoreDir(t, ".", snapshot)
			rewrite(t, file, func(s string) string { return s[:len(s)-1] + " " }) // the final newline becomes a space
			if got := e.digestOf(t, tmpl, template.LoadOptions{}); got == base {
				t.Errorf("digest unchanged after changing %s", file)
			}
		})
	}
}
