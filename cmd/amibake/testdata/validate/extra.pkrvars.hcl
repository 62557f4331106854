secret = "override"
regoin = "x"
