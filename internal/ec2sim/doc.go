// Package ec2sim is a local EC2: an HTTP server on loopback that speaks
// the EC2 Query API (and STS GetCallerIdentity) as AWS does, whose
// instances are real SSH hosts run by the vm package.
//
// # Using it
//
// A test starts one in-process and points an unchanged SDK client at it:
//
//	srv, err := ec2sim.Start(ctx, ec2sim.Options{Latency: ec2sim.ZeroLatency()})
//	defer srv.Close()
//	c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(srv.URL()) })
//
// Any access key and secret work (signatures are not checked); the region
// comes from the request's SigV4 credential scope. From a shell,
// `go run ./cmd/ec2sim` prints the AWS_ENDPOINT_URL line to export, which
// the AWS CLI and every SDK honour.
//
// # Instances
//
// Every address the API reports is loopback: each region's default VPC is
// 127.(31+i).0.0/16 with one /20 subnet per zone, and public addresses come
// from 127.(128+i).0.0/16. A running instance's SSH is served on port 22 of
// both its private and public address, admitted by its security groups
// (sgadmit.go). Binding port 22 (and the namespaces and overlay the
// instance, a real Debian system, runs in) needs root, so instances with SSH
// need a root process
// (make test runs the suite as root in a loopback-only network namespace);
// Options.NoSSH gives an API-only simulator that runs as any user, and
// Options.SSHPort moves sshd to another port. DNS names are reported but
// do not resolve: connect to the IP addresses.
//
// An image's root snapshot id names its filesystem in the vm package:
// CreateImage captures the instance's root filesystem, launching from an
// AMI starts from it, CopyImage copies it. Public catalogue images
// (Canonical Ubuntu 22.04/24.04, Amazon Linux 2023, Debian 12, several
// dates each, and the classic tutorial's ami-06128816a1c781a57 in
// ap-northeast-1) are built on first launch.
//
// # Realism
//
// Latency sets each state transition (DefaultLatency: EC2's shape in
// seconds; EC2Latency: EC2's own durations, Scaled for tests); zero
// durations complete inside the call that starts them while the answer
// still shows the state AWS answers with (pending, stopping, ...). Console
// output is posted Latency.ConsolePost after it changes; Latest=true reads
// it live on Nitro instance types only, as on EC2. Options.Consistency models EC2's
// eventual consistency: which calls see which new resources late, how
// often and for how long (DefaultConsistency as EC2 behaves for clients
// every day, HarshConsistency for resilience tests; see consistency.go). Options.Faults inject errors by call number
// or probability, reproducibly from Options.Seed (see ParseFaultRule for
// the flag syntax); SSH drops and slow sshd starts are vm options.
//
// # Admin endpoints (same listener)
//
//	GET  /_sim/calls      per-action call counts and timestamps (JSON); DELETE resets them
//	GET  /_sim/events     when each instance, image and snapshot reached its states, sshd up and console posted included (JSON)
//	GET  /_sim/inventory  the account's live resources per region, and "empty"
//	POST /_sim/reset      terminate everything and forget all state
//	GET  /_sim/faults     fault rules, seed and how often each fired; PUT replaces them
//	GET  /_sim/myip       the caller's address as plain text (checkip.amazonaws.com style)
//
// # A client-side caveat
//
// smithy-go closes a request's body as soon as the response headers
// arrive; its body's WriteTo then returns io.EOF, which net/http, still
// finishing the request, takes for a write error and closes the
// connection while a response larger than 4 KiB is being read
// ("deserialization failed ... use of closed network connection"). Real
// AWS is rarely fast enough to lose that race; a loopback simulator often
// is, and it does not hide it (upstream aws-sdk-go-v2 #1825, #2737). A
// client rules it out by wrapping its transport so the request body does
// not expose WriteTo, as internal/awsclient does (see hideWriteTo in this
// package's tests).
package ec2sim
