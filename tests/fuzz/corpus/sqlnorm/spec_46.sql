Select
	1;