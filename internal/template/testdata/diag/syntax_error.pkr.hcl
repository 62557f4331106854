source "amazon-ebs" "x" {
  region = "us-east-1"
  ami_name = "a" "b"
}
