source "amazon-ebs" "one" {
  region = "us-east-1"
}
source "amazon-ebs" "two" {
  region = "us-west-2"
}
source "docker" "d" {
  image = "ubuntu"
}
