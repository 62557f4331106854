locals {
	greeting = "héllo ${var.nope}"
}
