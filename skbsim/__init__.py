"""skbsim: an executable model of Linux receive-side sk_buff allocation."""
