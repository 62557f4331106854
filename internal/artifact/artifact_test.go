package artifact

import "testing"

func TestIDAndString(t *testing.T) {
	tests := []struct {
		name     string
		a        Artifact
		id, text string
	}{
		{"none", Artifact{}, "", "No AMIs were created."},
		{"sorted by region", Artifact{AMIs: map[string]string{"us-west-2": "ami-2", "ap-northeast-1": "ami-1"}},
			"ap-northeast-1:ami-1,us-west-2:ami-2", "AMIs were created:\nap-northeast-1: ami-1\nus-west-2: ami-2"},
		{"reused", Artifact{Reused: true, AMIs: map[string]string{"eu-west-1": "ami-3"}},
			"eu-west-1:ami-3", "AMIs were reused (their input digest matches; nothing was baked):\neu-west-1: ami-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.ID(); got != tt.id {
				t.Errorf("ID() = %q, want %q", got, tt.id)
			}
			if got := tt.a.String(); got != tt.text {
				t.Errorf("String() = %q, want %q", got, tt.text)
			}
		})
	}
}
