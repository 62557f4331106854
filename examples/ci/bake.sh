#!/bin/sh
# The commands of the CI examples (github-actions.yml, gitlab-ci.yml): one
# script, so that both CI systems run the same lines, and so does the test
# that runs them against the simulator (examples/ci/ci_test.go).
#
#   bake.sh install    download the amibake release archive, check it against
#                      SHA256SUMS, put amibake in $AMIBAKE_BIN_DIR (on PATH)
#   bake.sh validate   amibake validate $TEMPLATE (offline, no credentials)
#   bake.sh build      amibake build --reuse -machine-readable $TEMPLATE; the
#                      AMI id from the manifest goes to the job's outputs
#   bake.sh cleanup    after a failed or cancelled job: amibake cleanup
#                      --run-id for every run this job's ledger holds
#
# Environment: TEMPLATE (a template file or a directory of *.pkr.hcl),
# MANIFEST (the manifest post-processor's output, default manifest.json),
# AMIBAKE_VERSION and AMIBAKE_RELEASES_URL (install), AWS credentials and
# region as the AWS SDK reads them. Outputs: ami-id=... in $GITHUB_OUTPUT
# (GitHub Actions) and AMI_ID=... in $AMIBAKE_DOTENV (a GitLab dotenv report).
set -eu

: "${TEMPLATE:?set TEMPLATE to the template file or directory}"
MANIFEST=${MANIFEST:-manifest.json}
# The run ledger of this job only (amibake's journal of what it created):
# the cleanup step reads it to find the run ids.
XDG_STATE_HOME=${XDG_STATE_HOME:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/amibake-state}
export XDG_STATE_HOME
runs=$XDG_STATE_HOME/amibake/runs

case ${1:-} in
install)
	: "${AMIBAKE_VERSION:?set AMIBAKE_VERSION, e.g. v0.1.0}"
	base=${AMIBAKE_RELEASES_URL:-https://github.com/amibake/amibake/releases/download}/$AMIBAKE_VERSION
	bindir=${AMIBAKE_BIN_DIR:-$HOME/.local/bin}
	case $(uname -m) in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *)
		echo "bake.sh: no amibake release for $(uname -m)" >&2
		exit 1
		;;
	esac
	archive=amibake_${AMIBAKE_VERSION}_linux_$arch.tar.gz
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	curl -fsSL --retry 3 -o "$tmp/$archive" "$base/$archive"
	curl -fsSL --retry 3 -o "$tmp/SHA256SUMS" "$base/SHA256SUMS"
	(cd "$tmp" && grep "  $archive\$" SHA256SUMS | sha256sum -c -)
	mkdir -p "$bindir"
	tar -xzf "$tmp/$archive" -C "$bindir" amibake
	if [ -n "${GITHUB_PATH:-}" ]; then echo "$bindir" >>"$GITHUB_PATH"; fi
	"$bindir/amibake" version
	;;
validate)
	amibake validate "$TEMPLATE"
	;;
build)
	rm -f "$MANIFEST"
	# --reuse: a commit that changes nothing in the image reuses the AMI
	# baked before (same input digest) and launches nothing.
	amibake build --reuse -machine-readable "$TEMPLATE"
	# The manifest's entry of this run: "region:ami-id".
	ami=$(jq -r '.last_run_uuid as $run | [.builds[] | select(.packer_run_uuid == $run)] | last | .artifact_id | split(",")[0] | split(":")[1]' "$MANIFEST")
	case $ami in ami-*) ;; *)
		echo "bake.sh: no AMI id in $MANIFEST" >&2
		exit 1
		;;
	esac
	echo "AMI: $ami"
	if [ -n "${GITHUB_OUTPUT:-}" ]; then echo "ami-id=$ami" >>"$GITHUB_OUTPUT"; fi
	if [ -n "${AMIBAKE_DOTENV:-}" ]; then echo "AMI_ID=$ami" >>"$AMIBAKE_DOTENV"; fi
	;;
cleanup)
	# A cancelled job's amibake was interrupted (it cleans up) or killed
	# (it cannot): remove whatever its runs left, half-made AMIs included.
	status=0
	for journal in "$runs"/*.jsonl; do
		[ -e "$journal" ] || continue
		id=$(basename "$journal" .jsonl)
		amibake cleanup --run-id "$id" --include-images || status=1
	done
	exit $status
	;;
*)
	echo "usage: bake.sh install|validate|build|cleanup" >&2
	exit 2
	;;
esac
