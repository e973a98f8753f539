//! OVER windows: LAG, LEAD, ROW_NUMBER, RANK, DENSE_RANK, FIRST_VALUE, LAST_VALUE and every
//! aggregate over ROWS and RANGE frames, ordered by event time, emitted once final.
