source "amazon-ebs" "filtered" {
  region        = "ap-northeast-1"
  instance_type = "t3.micro"
  ssh_username  = "root"
  ami_name      = "filtered-{{timestamp}}"
  source_ami_filter {
    filters = {
      name = "base-*"
    }
    owners      = ["self"]
    most_recent = true
  }
}

build {
  sources = ["source.amazon-ebs.filtered"]
}
