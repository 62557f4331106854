# Two builds of one template, run in parallel.

source "amazon-ebs" "one" {
  region        = "ap-northeast-1"
  source_ami    = "ami-06128816a1c781a57"
  instance_type = "t2.micro"
  ssh_username  = "root"
  ami_name      = "parallel-one"
}

source "amazon-ebs" "two" {
  region        = "eu-west-1"
  instance_type = "t3.micro"
  ssh_username  = "admin"
  source_ami_filter {
    filters     = { name = "debian-12-amd64-*" }
    owners      = ["136693071363"]
    most_recent = true
  }
  ami_name = "parallel-two"
}

build {
  sources = ["source.amazon-ebs.one", "source.amazon-ebs.two"]

  provisioner "shell" {
    inline = ["sleep 1", "echo ${source.name} > /tmp/who"]
  }

  post-processor "manifest" {
    output = "manifest.json"
  }
}
