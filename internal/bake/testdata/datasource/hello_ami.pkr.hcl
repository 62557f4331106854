# The HCL2 tutorial with its source AMI found by an amazon-ami data source.

variable "aws_access_key" {
  type    = string
  default = "hoge"
}

variable "aws_secret_key" {
  type    = string
  default = "fuga"
}

data "amazon-ami" "tutorial" {
  access_key = var.aws_access_key
  secret_key = var.aws_secret_key
  region     = "ap-northeast-1"
  filters = {
    name = "ubuntu/images/hvm-ssd/ubuntu-bionic-18.04-amd64-server-*"
  }
  owners      = ["099720109477"]
  most_recent = true
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "hello_ami" {
  access_key    = var.aws_access_key
  secret_key    = var.aws_secret_key
  region        = "ap-northeast-1"
  source_ami    = data.amazon-ami.tutorial.id
  instance_type = "t2.micro"
  ssh_username  = "root"
  ami_name      = "hello_ami ${local.timestamp}"
}

build {
  sources = ["source.amazon-ebs.hello_ami"]
}
