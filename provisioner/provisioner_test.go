package provisioner

import "testing"

// TestBuildName: PACKER_BUILD_NAME is Packer's packer_build_name (the
// source's name in HCL2), not the full build name only/except match.
func TestBuildName(t *testing.T) {
	for _, tc := range []struct {
		b    Build
		want string
	}{
		{Build{Name: "learn-packer.amazon-ebs.ubuntu", PackerName: "ubuntu"}, "ubuntu"},
		{Build{Name: "first", PackerName: "first"}, "first"},
		{Build{Name: "amazon-ebs"}, "amazon-ebs"},
	} {
		if got := tc.b.BuildName(); got != tc.want {
			t.Errorf("%+v: BuildName() = %q, want %q", tc.b, got, tc.want)
		}
	}
}
