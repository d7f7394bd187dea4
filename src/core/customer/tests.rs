//! Rule tables for a customer's file (R02–R13), asserted as the events each operation returns.
