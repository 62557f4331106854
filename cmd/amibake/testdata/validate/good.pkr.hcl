variable "secret" {
  type      = string
  default   = "do-not-print-me"
  sensitive = true
}

source "amazon-ebs" "x" {
  region        = "us-east-1"
  source_ami    = "ami-12345678"
  instance_type = "t2.micro"
  ssh_username  = "ubuntu"
  ami_name      = "demo-ami"
}

build {
  sources = ["source.amazon-ebs.x"]
}
