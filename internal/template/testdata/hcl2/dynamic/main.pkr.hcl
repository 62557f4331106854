variable "tags" {
  default = { a = "1", b = "2" }
}

source "amazon-ebs" "x" {
  dynamic "tag" {
    for_each = var.tags
    content {
      key   = tag.key
      value = tag.value
    }
  }
}

build {
  sources = ["source.amazon-ebs.x"]
}
