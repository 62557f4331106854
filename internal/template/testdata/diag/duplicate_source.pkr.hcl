source "amazon-ebs" "x" {
  region = "us-east-1"
}

source "amazon-ebs" "x" {
  region = "eu-west-1"
}
