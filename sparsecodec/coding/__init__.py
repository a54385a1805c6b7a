"""Bit packing and canonical Huffman coding: the pieces every format shares."""
