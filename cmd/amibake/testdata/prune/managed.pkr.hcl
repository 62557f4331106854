# A template carrying the community amazon-ami-management post-processor,
# unchanged from what Packer users write.

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
}

source "amazon-ebs" "hello_ami" {
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t2.micro"
  ssh_username  = "root"
  ami_name      = "managed ${local.timestamp}"
  tags = {
    Amazon_AMI_Management_Identifier = "managed"
  }
}

build {
  sources = ["source.amazon-ebs.hello_ami"]

  post-processor "amazon-ami-management" {
    regions       = ["ap-northeast-1"]
    identifier    = "managed"
    keep_releases = 2
  }
}
