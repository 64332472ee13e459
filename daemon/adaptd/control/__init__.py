"""Control: the scheduler and the check -> evaluate -> act loop the daemon runs."""
